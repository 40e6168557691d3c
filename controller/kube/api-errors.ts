/** Readable text and HTTP status for client-node's ApiException and other errors. */

export function apiStatus(err: unknown): number | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'number') return (err as { code: number }).code;
  return undefined;
}

export function apiErrorText(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && 'body' in err) {
    const body = (err as { body: unknown }).body;
    let message = typeof body === 'string' ? body : JSON.stringify(body);
    try {
      const parsed = typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string } | undefined);
      if (parsed?.message) message = parsed.message;
    } catch {
      // not JSON: keep the body as it is
    }
    return `HTTP ${(err as { code: unknown }).code}: ${message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

export const isNotFound = (err: unknown): boolean => apiStatus(err) === 404;
export const isConflict = (err: unknown): boolean => apiStatus(err) === 409;
