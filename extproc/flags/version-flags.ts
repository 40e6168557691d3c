import { OpenFeature, StandardResolutionReasons, type Client, type EvaluationContext } from '@openfeature/server-sdk';

export interface FlagOutcome {
  /** The version the flag's targeting chose, if it chose one other than the flag's default. */
  flagVersion: string | undefined;
  killSwitch: boolean;
}

/** A targeting rule (or a fractional split) picked the variant: that may be a flag decision. */
const DECIDING_REASONS = new Set<string>([StandardResolutionReasons.TARGETING_MATCH, StandardResolutionReasons.SPLIT]);

/** The flag's default variant (name and value), when the provider can tell. */
export type DefaultVariantLookup = (flagKey: string) => { variant: string; value: unknown } | undefined;

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
    private readonly defaultVariantOf: DefaultVariantLookup = () => undefined,
  ) {
    this.client = OpenFeature.getClient(domain);
  }

  async evaluate(context: EvaluationContext): Promise<FlagOutcome> {
    const [version, kill] = await Promise.all([
      this.client.getStringDetails(this.versionFlag, '', context),
      this.client.getBooleanValue(this.killSwitchFlag, false, context),
    ]);
    const targeted = version.value !== '' && version.reason !== undefined && DECIDING_REASONS.has(version.reason);
    const decided = targeted && !this.isDefault(version.variant, version.value);
    return { flagVersion: decided ? version.value : undefined, killSwitch: kill };
  }

  private isDefault(variant: string | undefined, value: string): boolean {
    const dflt = this.defaultVariantOf(this.versionFlag);
    if (!dflt) return false;
    return variant !== undefined ? variant === dflt.variant : value === dflt.value;
  }
}
