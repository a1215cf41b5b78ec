import { GrantType } from '@writ/sdk/wire';
import { invalidRequest } from '../../errors.js';
import { single } from '../../request/form.js';
import { issueForFederatedToken } from './federated.js';
import type { Grant } from './grant.js';

/**
 * RFC 7523 §2.1: a workload presents a token from a trusted outside issuer (a GitHub Actions or GitLab
 * CI ID token, a Kubernetes service-account token, a SPIRE JWT-SVID) as `assertion` and gets a Writ
 * token, with no key or secret of its own (docs/federation.md).
 */
export const jwtBearer: Grant = {
  grantType: GrantType.jwtBearer,
  async handle(ctx, params, req) {
    const assertion = single(params, 'assertion', ctx.settings.limits.tokenBytes);
    if (assertion === undefined)
      throw invalidRequest('assertion is required (RFC 7523 §2.1)', { reason: 'missing_parameter' });
    return issueForFederatedToken(ctx, params, req, assertion, GrantType.jwtBearer);
  },
};
