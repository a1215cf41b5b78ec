import type { TokenResponse } from '@writ/sdk/wire';
import type { RequestInfo, WritContext } from '../../context.js';
import type { FormParams } from '../../request/form.js';

/** One grant type: a module exporting this shape, collected by the token endpoint. */
export interface Grant {
  grantType: string;
  handle(ctx: WritContext, params: FormParams, req: RequestInfo): Promise<TokenResponse>;
}
