import type { DetokenizableToken } from './expressions/index.ts';
import type { TokenRow } from './tables.ts';

/**
 * A token as expressions see it. The dates are formatted only when an expression reads them: the common
 * `{{ <id> }}` reads only `data`, and two toISOString calls were a tenth of detokenizing one token.
 */
export class DetokenizableRow implements DetokenizableToken {
  readonly id: string;
  readonly type: string;
  readonly metadata: Record<string, unknown> | null;
  readonly containers: string[];
  readonly fingerprint: string | null;
  readonly mask: unknown;

  constructor(
    private readonly row: TokenRow,
    readonly data: unknown,
  ) {
    this.id = row.id;
    this.type = row.type;
    this.metadata = row.metadata;
    this.containers = row.containers;
    this.fingerprint = row.fingerprint;
    this.mask = row.mask ?? null;
  }

  get createdAt(): string {
    return this.row.created_at.toISOString();
  }

  get expiresAt(): string | null {
    return this.row.expires_at?.toISOString() ?? null;
  }
}
