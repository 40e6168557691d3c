import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * Envoy's ext_proc protocol, loaded from the .proto files that ship inside
 * @grpc/grpc-js-xds (deps/envoy-api and its imports), so they track that pinned package.
 */
const require = createRequire(import.meta.url);
const xdsRoot = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
export const protoIncludeDirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(xdsRoot, 'deps', d));

const definition = protoLoader.loadSync('envoy/service/ext_proc/v3/external_processor.proto', {
  includeDirs: protoIncludeDirs,
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});

interface ExtProcPackage {
  envoy: { service: { ext_proc: { v3: { ExternalProcessor: grpc.ServiceClientConstructor } } } };
}

const loaded = grpc.loadPackageDefinition(definition) as unknown as ExtProcPackage;
export const ExternalProcessor = loaded.envoy.service.ext_proc.v3.ExternalProcessor;
export const externalProcessorService: grpc.ServiceDefinition = ExternalProcessor.service;

// The subset of the messages fledge reads and writes (field names as in the .proto).

export interface HeaderValue {
  key: string;
  value?: string;
  raw_value?: Buffer;
}

export interface HttpHeaders {
  headers?: { headers?: HeaderValue[] };
  end_of_stream?: boolean;
}

export interface HttpBody {
  body?: Buffer;
  end_of_stream?: boolean;
}

export interface ProcessingRequest {
  request?: 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';
  request_headers?: HttpHeaders;
  response_headers?: HttpHeaders;
  request_body?: HttpBody;
  response_body?: HttpBody;
  request_trailers?: unknown;
  response_trailers?: unknown;
}

export interface HeaderValueOption {
  header: { key: string; raw_value: Buffer };
  append_action: 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';
}

export interface CommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE';
  header_mutation?: { set_headers?: HeaderValueOption[]; remove_headers?: string[] };
  clear_route_cache?: boolean;
  body_mutation?: { body?: Buffer; clear_body?: boolean };
}

export type BodySendMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL';

export interface ProcessingMode {
  request_header_mode?: 'DEFAULT' | 'SEND' | 'SKIP';
  response_header_mode?: 'DEFAULT' | 'SEND' | 'SKIP';
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
  request_trailer_mode?: 'DEFAULT' | 'SEND' | 'SKIP';
  response_trailer_mode?: 'DEFAULT' | 'SEND' | 'SKIP';
}

export interface ProcessingResponse {
  request_headers?: { response: CommonResponse };
  response_headers?: { response: CommonResponse };
  request_body?: { response: CommonResponse };
  response_body?: { response: CommonResponse };
  request_trailers?: Record<string, never>;
  response_trailers?: Record<string, never>;
  mode_override?: ProcessingMode;
}

/** Envoy sends header values in raw_value (bytes) since 1.27; older versions used value. */
export function headerText(h: HeaderValue): string {
  if (h.raw_value && h.raw_value.length > 0) return h.raw_value.toString('utf8');
  return h.value ?? '';
}

export function setHeader(key: string, value: string): HeaderValueOption {
  return { header: { key, raw_value: Buffer.from(value, 'utf8') }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

/** Enough for every version, reason and route token a replica routes; past it the cache starts over. */
const SHARED_HEADER_LIMIT = 10_000;
const sharedHeaders = new Map<string, Map<string, Readonly<HeaderValueOption>>>();
let sharedHeaderCount = 0;

/**
 * setHeader for values that repeat across requests (versions, reasons, route tokens): the
 * option and its bytes are built once and shared by every response, so it is frozen.
 */
export function sharedSetHeader(key: string, value: string): HeaderValueOption {
  let byValue = sharedHeaders.get(key);
  if (byValue === undefined) {
    byValue = new Map();
    sharedHeaders.set(key, byValue);
  }
  let option = byValue.get(value);
  if (option === undefined) {
    if (sharedHeaderCount >= SHARED_HEADER_LIMIT) {
      sharedHeaders.clear();
      sharedHeaderCount = 0;
      return sharedSetHeader(key, value);
    }
    const built = setHeader(key, value);
    option = Object.freeze({ ...built, header: Object.freeze(built.header) });
    byValue.set(value, option);
    sharedHeaderCount++;
  }
  return option;
}
