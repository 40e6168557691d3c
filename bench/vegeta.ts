import { spawn } from 'node:child_process';

export interface AttackReport {
  rate: number;
  requests: number;
  successRatio: number;
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  statusCodes: Record<string, number>;
}

/**
 * vegeta sends at a fixed rate whatever the responses (an open model), so slow answers
 * do not hide behind fewer requests: latency is measured without coordinated omission.
 */
export async function attack(vegeta: string, targetsFile: string, rate: number, seconds: number): Promise<AttackReport> {
  const results = await run(vegeta, ['attack', `-targets=${targetsFile}`, `-rate=${rate}/s`, `-duration=${seconds}s`, '-keepalive=true', '-timeout=10s', '-max-workers=2000'], undefined);
  const json = await run(vegeta, ['report', '-type=json'], results);
  const r = JSON.parse(json.toString('utf8')) as {
    requests: number;
    success: number;
    throughput: number;
    latencies: { '50th': number; '99th': number };
    status_codes: Record<string, number>;
  };
  return {
    rate,
    requests: r.requests,
    successRatio: r.success,
    throughput: r.throughput,
    p50Ms: r.latencies['50th'] / 1e6,
    p99Ms: r.latencies['99th'] / 1e6,
    statusCodes: r.status_codes,
  };
}

function run(cmd: string, args: string[], stdin: Buffer | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${Buffer.concat(err).toString()}`)),
    );
    child.stdin.end(stdin ?? Buffer.alloc(0));
  });
}

/**
 * vegeta's http target format, one target per user so sticky assignment is exercised. With
 * a body file: a chat completion POST carrying it (vegeta's `@file` line).
 */
export function targets(port: number, host: string, users: number, bodyFile?: string): string {
  const blocks: string[] = [];
  for (let i = 0; i < users; i++) {
    blocks.push(
      bodyFile === undefined
        ? `GET http://127.0.0.1:${port}/v1/models\nHost: ${host}\nx-user-id: bench-user-${i}\n`
        : `POST http://127.0.0.1:${port}/v1/chat/completions\nHost: ${host}\nx-user-id: bench-user-${i}\nContent-Type: application/json\n@${bodyFile}\n`,
    );
  }
  return blocks.join('\n');
}
