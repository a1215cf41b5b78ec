import type { PublicJwk } from '../jose/jwk.js';

export interface Operator {
  name: string;
  jwks: PublicJwk[];
}
