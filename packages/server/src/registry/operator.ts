import type { PublicJwk } from '../jose/jwk.js';

export interface Operator {
  name: string;
  jwks: PublicJwk[];
  /**
   * The person who holds this operator key (docs/governance.md, "People"): while that person is not
   * active, the operator gets no admin token and its live admin tokens are refused.
   */
  person?: string;
}
