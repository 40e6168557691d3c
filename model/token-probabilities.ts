/**
 * OpenAI `logprobs` from node-llama-cpp. Its chat session, which applies the model's chat
 * template, stop triggers, grammar and repeat penalty, does not report token probabilities;
 * the context sequence it generates with does (evaluateWithMetadata). For one request, the
 * sequence's `evaluate` is swapped for a generator that asks for that metadata and hands the
 * chat session the same tokens, so answers are exactly those generated without logprobs.
 * The probabilities are the ones sampling used: after temperature and top_p.
 */
import type { LlamaContextSequence, LlamaModel, Token, TokenWithMetadata } from './runtime.js';

export interface TopLogprob {
  token: string;
  logprob: number;
  /** UTF-8 bytes of the token; null when the token is part of a multi-byte character. */
  bytes: number[] | null;
}

export interface TokenLogprob extends TopLogprob {
  top_logprobs: TopLogprob[];
}

/** OpenAI caps top_logprobs at 20. */
export const MAX_TOP_LOGPROBS = 20;
/** What OpenAI reports for a probability too small to represent (log 0 is not JSON). */
const FLOOR_LOGPROB = -9999;

export class TokenProbabilities {
  private readonly generated: TokenWithMetadata[] = [];
  private matched = 0;

  constructor(
    private readonly model: Pick<LlamaModel, 'detokenize'>,
    /** Alternatives per token (top_logprobs); 0 skips the full distribution, which costs time. */
    private readonly top: number,
  ) {}

  /** Records every token the sequence generates until the returned function is called. */
  attach(sequence: LlamaContextSequence): () => void {
    const generated = this.generated;
    const metadata = { confidence: true as const, probabilities: this.top > 0 };
    sequence.evaluate = (tokens, options) => {
      const inner = sequence.evaluateWithMetadata(tokens, metadata, options);
      return (async function* () {
        try {
          let step = await inner.next();
          while (!step.done) {
            generated.push(step.value);
            step = await inner.next(yield step.value.token);
          }
        } finally {
          await inner.return();
        }
      })();
    };
    // The own property shadows the prototype's method; deleting it restores the original.
    return () => delete (sequence as Partial<LlamaContextSequence>).evaluate;
  }

  /**
   * The logprobs of tokens the chat session released into the answer, in order. Tokens it
   * held back and dropped (a stop trigger, the end-of-generation token) are skipped.
   */
  released(tokens: readonly Token[]): TokenLogprob[] {
    const out: TokenLogprob[] = [];
    for (const token of tokens) {
      let i = this.matched;
      while (i < this.generated.length && this.generated[i]!.token !== token) i++;
      if (i === this.generated.length) continue; // not generated here (cannot happen with one sequence per request)
      const g = this.generated[i]!;
      this.matched = i + 1;
      const top = g.probabilities ? [...g.probabilities].slice(0, this.top).map(([t, p]) => this.entry(t, p)) : [];
      out.push({ ...this.entry(token, g.confidence), top_logprobs: top });
    }
    return out;
  }

  private entry(token: Token, probability: number): TopLogprob {
    const text = this.model.detokenize([token], false);
    return { token: text, logprob: probability > 0 ? Math.max(FLOOR_LOGPROB, Math.log(probability)) : FLOOR_LOGPROB, bytes: text.includes('\uFFFD') ? null : [...Buffer.from(text, 'utf8')] };
  }
}
