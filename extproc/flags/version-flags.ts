import { OpenFeature, StandardResolutionReasons, type Client, type EvaluationContext } from '@openfeature/server-sdk';

export interface FlagOutcome {
  /** The version the flag's targeting chose, if it chose one. */
  flagVersion: string | undefined;
  killSwitch: boolean;
}

/** A targeting rule (or a fractional split) picked the variant: that is a flag decision. */
const DECIDING_REASONS = new Set<string>([StandardResolutionReasons.TARGETING_MATCH, StandardResolutionReasons.SPLIT]);

/**
 * Evaluates the version flag and the kill-switch flag through OpenFeature. A flag's
 * default variant (reason STATIC/DEFAULT), a disabled flag or an error is "no decision":
 * the rollout weight decides.
 */
export class VersionFlags {
  private readonly client: Client;

  constructor(
    private readonly versionFlag: string,
    private readonly killSwitchFlag: string,
    domain = 'fledge-extproc',
  ) {
    this.client = OpenFeature.getClient(domain);
  }

  async evaluate(context: EvaluationContext): Promise<FlagOutcome> {
    const [version, kill] = await Promise.all([
      this.client.getStringDetails(this.versionFlag, '', context),
      this.client.getBooleanValue(this.killSwitchFlag, false, context),
    ]);
    const decided = version.value !== '' && version.reason !== undefined && DECIDING_REASONS.has(version.reason);
    return { flagVersion: decided ? version.value : undefined, killSwitch: kill };
  }
}
