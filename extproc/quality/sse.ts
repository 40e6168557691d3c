/**
 * Incremental server-sent-events reader: bytes in, complete events' `data` out, for any
 * split of the stream (inside a line, inside a UTF-8 character, between \r and \n).
 * Only the current event is held; a line longer than `maxLineBytes` marks the stream
 * oversized and the reader stops keeping data.
 */
export class SseReader {
  private pending: Buffer = Buffer.alloc(0);
  private data: string[] = [];
  private skipLeadingLf = false;
  oversized = false;

  constructor(
    private readonly onEvent: (data: string) => void,
    private readonly maxLineBytes: number,
  ) {}

  push(chunk: Buffer): void {
    if (this.oversized) return;
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    if (this.skipLeadingLf && buf.length > 0) {
      if (buf[0] === 0x0a) buf = buf.subarray(1);
      this.skipLeadingLf = false;
    }
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const byte = buf[i];
      if (byte !== 0x0a && byte !== 0x0d) continue;
      this.line(buf.subarray(start, i).toString('utf8'));
      if (byte === 0x0d) {
        if (i + 1 < buf.length) {
          if (buf[i + 1] === 0x0a) i++;
        } else {
          this.skipLeadingLf = true;
        }
      }
      start = i + 1;
    }
    this.pending = Buffer.from(buf.subarray(start));
    if (this.pending.length > this.maxLineBytes) {
      this.oversized = true;
      this.pending = Buffer.alloc(0);
      this.data = [];
    }
  }

  /** End of stream: a last event without its blank line still counts (a cut stream). */
  end(): void {
    if (this.oversized) return;
    if (this.pending.length > 0) this.line(this.pending.toString('utf8'));
    this.pending = Buffer.alloc(0);
    this.dispatch();
  }

  private line(text: string): void {
    if (text === '') return this.dispatch();
    if (text.startsWith(':')) return; // comment
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    if (field !== 'data') return; // event, id, retry: not needed
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.data.push(value);
  }

  private dispatch(): void {
    if (this.data.length === 0) return;
    const data = this.data.join('\n');
    this.data = [];
    this.onEvent(data);
  }
}
