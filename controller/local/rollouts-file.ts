import { z } from 'zod';

const version = z.string().regex(/^[A-Za-z0-9._-]+$/, 'a version is letters, digits, dot, dash or underscore');

/**
 * Local mode's rollouts file: what the fledge.dev/* annotations say in a cluster, one entry
 * per rollout. Adding an entry starts a rollout; the state lives in the state dir.
 */
export const rolloutsFileSchema = z.strictObject({
  rollouts: z
    .array(
      z.strictObject({
        /** Default: "<service>-<candidate>". */
        name: z
          .string()
          .regex(/^[a-z0-9][a-z0-9.-]*$/, 'a rollout name is lower-case letters, digits, dots and dashes')
          .optional(),
        /** A service of the local stack (fledge.dev/virtual-service). */
        service: z.string().min(1),
        /** The version to roll out (the canary subset). */
        candidate: version,
        /** Default: the service's current stable version (fledge.dev/stable-subset). */
        stable: version.optional(),
        /** A policy from the policy files, or the built-in `default` (fledge.dev/policy). */
        policy: z.string().min(1).default('default'),
      }),
    )
    .default([]),
  /** Policy files (fledge policies, Argo Rollouts, AnalysisTemplates), relative to this file. */
  policies: z.array(z.string().min(1)).default([]),
});

export type RolloutsFile = z.output<typeof rolloutsFileSchema>;
export type LocalRolloutSpec = RolloutsFile['rollouts'][number] & { name: string };

/** Every rollout with its name filled in; a duplicate name is an error naming both entries. */
export function namedRollouts(file: RolloutsFile, source: string): LocalRolloutSpec[] {
  const seen = new Map<string, number>();
  return file.rollouts.map((r, i) => {
    const name = r.name ?? `${r.service}-${r.candidate}`.toLowerCase().replaceAll(/[^a-z0-9.-]/g, '-');
    const first = seen.get(name);
    if (first !== undefined) throw new Error(`${source}: rollouts[${i}]: the name ${name} is already used by rollouts[${first}]`);
    seen.set(name, i);
    return { ...r, name };
  });
}
