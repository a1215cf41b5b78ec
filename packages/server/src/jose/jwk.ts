// Moved to the SDK so clients, verifiers and the server share one JOSE implementation.
export * from '@writ/sdk/jose/jwk';
