const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Decodes strict unpadded base64url; returns undefined for any other alphabet or a dangling char. */
export function decodeBase64url(input: string): Buffer | undefined {
  if (!BASE64URL.test(input) || input.length % 4 === 1) return undefined;
  return Buffer.from(input, 'base64url');
}

export const encodeBase64url = (input: Buffer | Uint8Array | string): string =>
  (typeof input === 'string' ? Buffer.from(input) : Buffer.from(input)).toString('base64url');
