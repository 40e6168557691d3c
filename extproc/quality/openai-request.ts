/** What the evaluators need from an OpenAI chat request body. */
export interface RequestFacts {
  /** The last user message's text (what a golden entry is matched against). */
  prompt: string | undefined;
  stream: boolean;
  includeUsage: boolean;
  /** response_format asked for JSON; `schema` when it gave a JSON schema. */
  wantsJson: boolean;
  schema: unknown;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A body's JSON, or undefined when it is not JSON: parsed once, read by both functions below. */
export function parseJsonBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Never throws: a body that is not a chat request gives undefined. */
export function readChatRequest(body: Buffer): RequestFacts | undefined {
  return chatRequestFacts(parseJsonBody(body));
}

/** readChatRequest over an already parsed body. */
export function chatRequestFacts(raw: unknown): RequestFacts | undefined {
  if (!isObject(raw)) return undefined;
  const format = isObject(raw.response_format) ? raw.response_format : undefined;
  const formatType = typeof format?.type === 'string' ? format.type : undefined;
  const jsonSchema = isObject(format?.json_schema) ? format.json_schema : undefined;
  const options = isObject(raw.stream_options) ? raw.stream_options : undefined;
  return {
    prompt: lastUserText(raw.messages) ?? (typeof raw.prompt === 'string' ? raw.prompt : undefined),
    stream: raw.stream === true,
    includeUsage: options?.include_usage === true,
    wantsJson: formatType === 'json_object' || formatType === 'json_schema',
    schema: jsonSchema?.schema,
  };
}

function lastUserText(messages: unknown): string | undefined {
  if (!Array.isArray(messages)) return undefined;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m: unknown = messages[i];
    if (!isObject(m) || m.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) {
      return m.content
        .map((p: unknown) => (isObject(p) && typeof p.text === 'string' ? p.text : ''))
        .filter((t) => t !== '')
        .join('\n');
    }
  }
  return undefined;
}

/**
 * Adds stream_options.include_usage to a streaming request that did not ask for it.
 * Returns the new body, or undefined when there is nothing to change.
 */
export function withStreamUsage(body: Buffer, parsed: unknown = parseJsonBody(body)): Buffer | undefined {
  // Changed in place: the caller's parsed copy is done with once this is asked for.
  const raw = parsed;
  if (!isObject(raw) || raw.stream !== true) return undefined;
  const options = isObject(raw.stream_options) ? raw.stream_options : {};
  if (options.include_usage === true) return undefined;
  raw.stream_options = { ...options, include_usage: true };
  return Buffer.from(JSON.stringify(raw), 'utf8');
}
