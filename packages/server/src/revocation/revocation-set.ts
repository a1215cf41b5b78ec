// The revocation set lives in the SDK: verifiers and the server match tokens the same way.
export { type RevocableToken, RevocationSet } from '@writ/sdk/verifier';
