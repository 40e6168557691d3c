import { OpenFeature, StandardResolutionReasons, type Client, type EvaluationContext } from '@openfeature/server-sdk';

export interface FlagOutcome {
  /** The version the flag's targeting chose, if it chose one other than the flag's default. */
  flagVersion: string | undefined;
  killSwitch: boolean;
}

/** A targeting rule (or a fractional split) picked the variant: that may be a flag decision. */
const DECIDING_REASONS = new Set<string>([StandardResolutionReasons.TARGETING_MATCH, StandardResolutionReasons.SPLIT]);

/** What the flags in force say about a flag, without evaluating it (the flag file's provider knows). */
export interface FlagFacts {
  /** The flag's default variant (name and value); undefined: no such flag or no default. */
  defaultVariant(flagKey: string): { variant: string; value: unknown } | undefined;
  /** The flag's variants (name → value); undefined: the flags in force have no such flag. */
  variants(flagKey: string): ReadonlyMap<string, unknown> | undefined;
}

/**
 * Evaluates the version flag and the kill-switch flag through OpenFeature.
 *
 * Only a targeting result naming a variant other than the flag's default variant is a
 * decision. The default variant (reason STATIC/DEFAULT, or a targeting branch that returns
 * it, like the seed's final "v1.2"), a disabled flag or an error is "no decision": the
 * rollout weight decides. So a flag file that says "internal users get v1.3, everyone
 * else the default" leaves everyone else to the rollout, as the seed intends.
 */
export class VersionFlags {
  private readonly client: Client;

  constructor(
    private readonly versionFlag: string,
    private readonly killSwitchFlag: string,
    domain = 'fledge-extproc',
    private readonly facts?: FlagFacts,
  ) {
    this.client = OpenFeature.getClient(domain);
  }

  /**
   * With `versions` (the service's stable and canary), a flag is evaluated only when it can
   * change the answer: an absent kill switch is off, and a version flag none of whose
   * non-default variants names one of them cannot decide. Either way the outcome is what a
   * full evaluation would give; the hot path just skips the work (and OpenFeature's
   * FLAG_NOT_FOUND error object, built per call).
   */
  async evaluate(context: EvaluationContext, versions?: readonly string[]): Promise<FlagOutcome> {
    let flagVersion: string | undefined;
    if (this.mayDecideVersion(versions)) {
      const version = await this.client.getStringDetails(this.versionFlag, '', context);
      const targeted = version.value !== '' && version.reason !== undefined && DECIDING_REASONS.has(version.reason);
      if (targeted && !this.isDefault(version.variant, version.value)) flagVersion = version.value;
    }
    const killSwitchAbsent = this.facts !== undefined && this.facts.variants(this.killSwitchFlag) === undefined;
    const killSwitch = killSwitchAbsent ? false : await this.client.getBooleanValue(this.killSwitchFlag, false, context);
    return { flagVersion, killSwitch };
  }

  private mayDecideVersion(versions: readonly string[] | undefined): boolean {
    if (!this.facts || !versions) return true;
    const variants = this.facts.variants(this.versionFlag);
    if (!variants) return false;
    const dflt = this.facts.defaultVariant(this.versionFlag);
    for (const [name, value] of variants) {
      if (name !== dflt?.variant && versions.includes(value as string)) return true;
    }
    return false;
  }

  private isDefault(variant: string | undefined, value: string): boolean {
    const dflt = this.facts?.defaultVariant(this.versionFlag);
    if (!dflt) return false;
    return variant !== undefined ? variant === dflt.variant : value === dflt.value;
  }
}
