import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ConfigError } from '../../common/config-error.js';
import { parseStructured } from '../../common/structured-file.js';
import { extprocConfigSchema } from '../../extproc/config.js';
import { openFeatureLogger, validateFlagdText } from '../../extproc/flags/flagd-file-provider.js';
import { routingFileSchema } from '../../extproc/routing/state.js';

const quiet = openFeatureLogger(pino({ level: 'silent' }));

describe('extproc config', () => {
  it('fills every default from a minimal file', () => {
    const config = parseStructured('routing: {file: r.yaml}', extprocConfigSchema, 'extproc.yaml');
    expect(config.grpc).toEqual({ host: '127.0.0.1', port: 50051 });
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9101 });
    expect(config.flags.versionFlag).toBe('inference-model-version');
    expect(config.flags.killSwitchFlag).toBe('inference-kill-switch');
  });

  it('names the file and the bad field', () => {
    const attempt = () => parseStructured('routing: {file: r.yaml}\ngrpc: {port: "fifty"}', extprocConfigSchema, 'extproc.yaml');
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/extproc\.yaml: grpc\.port/);
    expect(() => parseStructured('routing: {file: r.yaml}\ngrpcc: {}', extprocConfigSchema, 'x.yaml')).toThrow(/grpcc/);
    expect(() => parseStructured('{}', extprocConfigSchema, 'x.yaml')).toThrow(/x\.yaml: routing: required/);
  });
});

describe('routing file', () => {
  it('rejects a weight over 100 and a canary equal to stable, with paths', () => {
    expect(() => parseStructured('services: {chat: {stable: v1, canary: v2, canaryWeight: 101}}', routingFileSchema, 'r.yaml')).toThrow(/services\.chat\.canaryWeight/);
    expect(() => parseStructured('services: {chat: {stable: v1, canary: v1}}', routingFileSchema, 'r.yaml')).toThrow(/services\.chat\.canary: canary must differ/);
  });

  it('reports YAML syntax errors as ConfigErrors', () => {
    expect(() => parseStructured('services: {chat: [', routingFileSchema, 'r.yaml')).toThrow(/r\.yaml: not valid YAML/);
  });
});

describe('flagd flag files', () => {
  it('accepts the seed flag file', () => {
    const seed = readFileSync(resolve(import.meta.dirname, '../fixtures/seed/flags.json'), 'utf8');
    expect(validateFlagdText(seed, 'flags.json', quiet)).toEqual(['inference-model-version']);
  });

  it('rejects broken JSON and schema violations with where and why', () => {
    expect(() => validateFlagdText('{"flags": ', 'flags.json', quiet)).toThrow(/flags\.json: not valid JSON/);
    const badState = JSON.stringify({ flags: { f: { state: 'ON', variants: { a: 'x' }, defaultVariant: 'a' } } });
    expect(() => validateFlagdText(badState, 'flags.json', quiet)).toThrow(/flags\.json: flags\.f\.state/);
  });
});

describe('the gRPC listen address', () => {
  it('takes unix:/path as a socket and host:port as TCP, naming a bad one', async () => {
    const { parseListen } = await import('../../cli/extproc-command.js');
    expect(parseListen('unix:/run/fledge/extproc.sock')).toEqual({ socket: '/run/fledge/extproc.sock' });
    expect(parseListen('0.0.0.0:50051')).toEqual({ host: '0.0.0.0', port: 50051 });
    expect(parseListen('[::1]:50051')).toEqual({ host: '::1', port: 50051 });
    expect(() => parseListen('unix:relative.sock')).toThrow(/absolute path/);
    expect(() => parseListen('50051')).toThrow(/neither unix:\/path nor host:port/);
    expect(extprocConfigSchema.safeParse({ grpc: { socket: 'x.sock' } }).error?.issues[0]?.message).toMatch(/grpc.socket is an absolute path/);
  });
});
