// The revocation set lives in the SDK: verifiers and the server match tokens the same way.
export { type RevocableToken, RevocationSet, revokedBy } from '@writ/sdk/verifier';
