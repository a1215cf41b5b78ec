import { setFlagsFromString } from 'node:v8';
import { PolicyBundleError } from './policy-bundle.js';

/** The few Cedar functions the verifier calls (`@cedar-policy/cedar-wasm`). */
export interface CedarApi {
  preparsePolicySet(
    id: string,
    policies: { staticPolicies: Record<string, string> },
  ): { type: 'success' } | { type: 'failure'; errors: Array<{ message: string }> };
  statefulIsAuthorized(call: {
    principal: { type: string; id: string };
    action: { type: string; id: string };
    resource: { type: string; id: string };
    context: Record<string, unknown>;
    preparsedPolicySetId: string;
    entities: unknown[];
  }):
    | { type: 'failure'; errors: Array<{ message: string }> }
    | {
        type: 'success';
        response: {
          decision: 'allow' | 'deny';
          diagnostics: { reason: string[]; errors: Array<{ policyId: string; error: { message: string } }> };
        };
      };
}

const CEDAR_MODULE = '@cedar-policy/cedar-wasm/nodejs';

/** Cedar, loaded on first use: the verifier stays small for those who do not decide policy locally. */
export async function loadCedar(): Promise<CedarApi> {
  // As on the server: Node 20's V8 can abort when a JS-to-Wasm call inlined into optimised code is
  // deoptimised lazily; not inlining those calls avoids it. Set before the module is instantiated.
  setFlagsFromString('--no-turbo-inline-js-wasm-calls');
  try {
    const m = (await import(CEDAR_MODULE)) as { default?: CedarApi } & CedarApi;
    return typeof m.statefulIsAuthorized === 'function' ? m : (m.default as CedarApi);
  } catch (err) {
    throw new PolicyBundleError(
      'cedar_missing',
      `local policy needs the optional peer dependency @cedar-policy/cedar-wasm (npm install @cedar-policy/cedar-wasm): ${(err as Error).message}`,
    );
  }
}
