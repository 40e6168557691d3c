import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES, widenConnectionWindows, widenFlowControl } from '../../extproc/server.js';

/**
 * extproc reaches into the pinned @grpc/grpc-js server for its HTTP/2 receive windows (grpc-js
 * has no option for them): what a client connecting to it is told, read by a real HTTP/2 client.
 */
describe("extproc's HTTP/2 receive windows", () => {
  it('advertises the wide stream window in its SETTINGS and opens the connection window', async () => {
    const server = new grpc.Server();
    expect(widenFlowControl(server)).toBe(true);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    expect(widenConnectionWindows(server)).toBe(true);
    const client = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const settings = await new Promise<http2.Settings>((resolve) => client.once('remoteSettings', resolve));
      expect(settings.initialWindowSize).toBe(STREAM_WINDOW_BYTES);
      // The server's WINDOW_UPDATE for the connection follows its SETTINGS: wait for the client to have it.
      await expect.poll(() => client.state.remoteWindowSize).toBe(CONNECTION_WINDOW_BYTES);
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    }
  });

  it('a plain grpc-js server keeps HTTP/2 defaults (so the test above shows the change, not the defaults)', async () => {
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const client = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const settings = await new Promise<http2.Settings>((resolve) => client.once('remoteSettings', resolve));
      expect(settings.initialWindowSize ?? 65_535).toBe(65_535);
      expect(client.state.remoteWindowSize).toBe(65_535);
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    }
  });
});
