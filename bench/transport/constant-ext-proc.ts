/**
 * An ext_proc server with no logic, for bench/extproc-transport-bench.ts: it answers every
 * request-headers message with one fixed header and every other message with CONTINUE, over
 * grpc-js (`grpc-js`) or over bare node:http2 with the gRPC framing done here (`http2`). Same
 * codec (proto/ext-proc.ts) in both: only the transport differs. Measurement only, never served.
 */
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { externalProcessorService, sharedSetHeader, type ProcessingRequest, type ProcessingResponse } from '../../proto/ext-proc.js';

const [kind, portText] = process.argv.slice(2);
const port = Number(portText);
const codec = externalProcessorService.Process!;
const onRequestHeaders: ProcessingResponse = { request_headers: { response: { status: 'CONTINUE', header_mutation: { set_headers: [sharedSetHeader('x-fledge-reason', 'constant')] } } } };

function answer(msg: ProcessingRequest): ProcessingResponse {
  switch (msg.request) {
    case 'request_headers':
      return onRequestHeaders;
    case 'response_headers':
      return { response_headers: { response: { status: 'CONTINUE' } } };
    case 'request_body':
      return { request_body: { response: { status: 'CONTINUE' } } };
    default:
      return { response_body: { response: { status: 'CONTINUE' } } };
  }
}

if (kind === 'grpc-js') {
  const server = new grpc.Server({ 'grpc.max_concurrent_streams': 10_000 });
  const handler: grpc.handleBidiStreamingCall<ProcessingRequest, ProcessingResponse> = (call) => {
    call.on('data', (msg: ProcessingRequest) => call.write(answer(msg)));
    call.on('end', () => call.end());
    call.on('error', () => undefined); // Envoy resets every stream at its end
  };
  server.addService(externalProcessorService, { Process: handler as grpc.UntypedHandleCall });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
  });
} else if (kind === 'http2') {
  const server = http2.createServer({ settings: { maxConcurrentStreams: 10_000 } });
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    let held: Buffer | undefined;
    stream.on('data', (chunk: Buffer) => {
      let buf = held ? Buffer.concat([held, chunk]) : chunk;
      held = undefined;
      // gRPC framing: a compressed flag byte, a 4-byte big-endian length, the message.
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const length = buf.readUInt32BE(1);
        const reply = codec.responseSerialize(answer(codec.requestDeserialize(buf.subarray(5, 5 + length)) as ProcessingRequest));
        const frame = Buffer.allocUnsafe(5 + reply.length);
        frame[0] = 0;
        frame.writeUInt32BE(reply.length, 1);
        reply.copy(frame, 5);
        stream.write(frame);
        buf = buf.subarray(5 + length);
      }
      if (buf.length > 0) held = buf;
    });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.on('end', () => stream.end());
    stream.on('error', () => undefined);
  });
  server.listen(port, '127.0.0.1');
} else {
  throw new Error(`constant-ext-proc: unknown transport "${kind}" (grpc-js or http2)`);
}
