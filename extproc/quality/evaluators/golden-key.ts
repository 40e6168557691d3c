/** How a prompt is compared with the golden set's: trimmed, whitespace collapsed, lower-cased. */
export function normalizePrompt(prompt: string): string {
  return prompt.trim().replace(/\s+/gu, ' ').toLowerCase();
}
