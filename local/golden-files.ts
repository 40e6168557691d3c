import { packageFile } from './package-paths.js';

/** The golden set fledge ships (general knowledge, unambiguous answers); the prober's and the default policy's default. */
export const DEFAULT_GOLDEN_FILE = packageFile('extproc/quality/golden/general-knowledge.yaml');
