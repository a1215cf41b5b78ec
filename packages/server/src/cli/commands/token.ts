import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { WorkloadClient } from '@writ/sdk/client';
import { createDpopProof, type DpopKey, dpopKeyFrom, generateDpopKey } from '@writ/sdk/dpop';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, GrantType } from '@writ/sdk/wire';
import type { Command } from 'commander';
import { createRemoteJWKSet, type JWK, jwtVerify } from 'jose';
import {
  type AdminClient,
  CliError,
  postForm,
  readClientTls,
  readPrivateKeyFile,
  signAssertion,
} from '../client.js';
import type { CommandContext } from '../command-context.js';

interface Metadata {
  issuer: string;
  token_endpoint: string;
  jwks_uri: string;
}

async function metadata(server: string): Promise<Metadata> {
  const res = await fetch(`${server.replace(/\/+$/, '')}/.well-known/oauth-authorization-server`);
  if (!res.ok) throw new Error(`metadata: HTTP ${res.status}`);
  return (await res.json()) as Metadata;
}

/**
 * `writ token get`: client_credentials with private_key_jwt and a DPoP proof, the way any workload would
 * do it. The DPoP key is read from `dpopKey` (created 0600 if missing) or is ephemeral. With
 * `tlsCert`/`tlsKey` instead of `key`: tls_client_auth over mutual TLS (RFC 8705), and a DPoP proof only
 * with `dpopKey` (so a `binding: mtls` class returns a token bound to the certificate alone).
 */
export async function getToken(
  server: string,
  o: {
    clientId: string;
    key?: string | undefined;
    tlsCert?: string | undefined;
    tlsKey?: string | undefined;
    tlsCa?: string | undefined;
    audience: string;
    scope?: string;
    ttl?: string;
    dpopKey?: string;
    bearer?: boolean;
  },
): Promise<Record<string, unknown>> {
  const tls = readClientTls(o);
  if (tls) {
    if (o.key !== undefined) throw new CliError('give --key or --tls-cert/--tls-key, not both');
    if (o.bearer && o.dpopKey) throw new CliError('--bearer sends no DPoP proof: leave out --dpop-key');
    // tls_client_auth: client_id and the certificate; a DPoP proof only with --dpop-key.
    const dpopKey = o.dpopKey !== undefined ? loadOrCreateDpopKey(o.dpopKey) : undefined;
    const client = new WorkloadClient({
      issuer: server,
      clientId: o.clientId,
      tls,
      dpop: dpopKey !== undefined,
      ...(dpopKey ? { dpopKey } : {}),
    });
    try {
      const ttl = o.ttl === undefined ? undefined : Number(o.ttl);
      const res = (await client
        .requestToken({
          audience: o.audience,
          ...(o.scope ? { scope: o.scope } : {}),
          ...(ttl ? { ttl } : {}),
        })
        .catch((err: Error) => {
          throw new CliError(err.message);
        })) as unknown as Record<string, unknown>;
      return dpopKey ? { ...res, dpop_jkt: dpopKey.jkt, dpop_key: o.dpopKey } : res;
    } finally {
      client.close();
    }
  }
  if (o.key === undefined)
    throw new CliError('give --key (private_key_jwt) or --tls-cert and --tls-key (mTLS)');
  const meta = await metadata(server);
  const jwk = readPrivateKeyFile<JWK>(o.key);
  const assertion = await signAssertion(jwk, o.clientId, meta.issuer);
  const form = {
    grant_type: GrantType.clientCredentials,
    client_id: o.clientId,
    client_assertion_type: CLIENT_ASSERTION_TYPE_JWT_BEARER,
    client_assertion: assertion,
    resource: o.audience,
    ...(o.scope ? { scope: o.scope } : {}),
    ...(o.ttl ? { ttl: o.ttl } : {}),
  };
  if (o.bearer) return (await postForm(meta.token_endpoint, form)) as Record<string, unknown>;
  const key = loadOrCreateDpopKey(o.dpopKey);
  const res = await postFormWithDpop(meta.token_endpoint, form, key);
  return { ...res, dpop_jkt: key.jkt, ...(o.dpopKey ? { dpop_key: o.dpopKey } : {}) };
}

/** Reads a DPoP private JWK file, or creates one (0600); without a file, an ephemeral key. */
export function loadOrCreateDpopKey(file: string | undefined): DpopKey {
  if (file === undefined) return generateDpopKey();
  if (!existsSync(file)) {
    const key = generateDpopKey();
    const jwk = key.privateKey.export({ format: 'jwk' });
    writeFileSync(file, `${JSON.stringify({ ...jwk, alg: key.alg }, null, 2)}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
    return key;
  }
  const jwk = readPrivateKeyFile<JWK & { alg?: string }>(file);
  const alg = jwk.alg === 'EdDSA' ? 'EdDSA' : 'ES256';
  const privateKey = createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  return dpopKeyFrom(
    privateKey,
    createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, string>,
    alg,
  );
}

/** POSTs a form with a DPoP proof, retrying once with the server's nonce (RFC 9449 §8). */
export async function postFormWithDpop(
  url: string,
  form: Record<string, string>,
  key: DpopKey,
): Promise<Record<string, unknown>> {
  let nonce: string | undefined;
  for (let attempt = 0; attempt < 2; attempt++) {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        dpop: createDpopProof(key, { method: 'POST', url, ...(nonce ? { nonce } : {}) }),
      },
      body: new URLSearchParams(form).toString(),
    });
    const body = (await res.json()) as Record<string, unknown>;
    if (res.ok) return body;
    const fresh = res.headers.get('dpop-nonce');
    if (body['error'] === 'use_dpop_nonce' && fresh && attempt === 0) {
      nonce = fresh;
      continue;
    }
    throw new CliError(`${res.status} ${String(body['error'])}: ${String(body['error_description'] ?? '')}`);
  }
  throw new CliError('the server kept asking for a new DPoP nonce');
}

/** `writ token verify`: what a resource server does, with `jose` against the published JWKS. */
export async function verifyToken(
  server: string,
  token: string,
  audience: string | undefined,
): Promise<Record<string, unknown>> {
  const meta = await metadata(server);
  const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(meta.jwks_uri)), {
    issuer: meta.issuer,
    typ: 'at+jwt',
    algorithms: ['ES256', 'EdDSA'],
    ...(audience ? { audience } : {}),
  });
  return { header: protectedHeader, claims: payload };
}

/** `writ token introspect`: RFC 7662 as an operator. */
export async function introspect(client: AdminClient, token: string): Promise<Record<string, unknown>> {
  return client.postForm('/oauth2/introspect', { token });
}

export function registerToken(program: Command, cli: CommandContext): void {
  const token = program.command('token').description('get, verify and introspect access tokens');
  token
    .command('get')
    .description('client_credentials with private_key_jwt (or mTLS), as a workload')
    .requiredOption('--client-id <spiffe-id>', 'the workload')
    .option('--key <file>', "the workload's private JWK (private_key_jwt)")
    .option(
      '--tls-cert <file>',
      'instead of --key: client certificate (PEM) for mTLS (tls_client_auth, RFC 8705)',
    )
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM; refused if group or others can read it)')
    .option('--tls-ca <file>', "the server's CA (PEM) when it is not publicly trusted")
    .requiredOption('--audience <uri>', 'the one audience (RFC 8707 resource)')
    .option('--scope <scopes>', 'space-separated scopes')
    .option('--ttl <seconds>', 'requested lifetime (clamped to the class max)')
    .option(
      '--dpop-key <file>',
      'DPoP private key to bind the token to (created 0600 if missing; default: ephemeral; with --tls-cert: no DPoP proof unless given)',
    )
    .option('--bearer', 'send no DPoP proof (only classes with binding: bearer accept this)')
    .option('--raw', 'print only the access token')
    .action(
      async (o: {
        clientId: string;
        key?: string;
        tlsCert?: string;
        tlsKey?: string;
        tlsCa?: string;
        audience: string;
        scope?: string;
        ttl?: string;
        dpopKey?: string;
        bearer?: boolean;
        raw?: boolean;
      }) => {
        const r = await getToken(cli.globals().server, o);
        cli.out(o.raw ? String(r['access_token']) : r);
      },
    );
  token
    .command('verify <token>')
    .description('verify a token against the published JWKS (as a resource server would)')
    .option('--audience <uri>', 'expected audience')
    .action(async (t: string, o: { audience?: string }) =>
      cli.out(await verifyToken(cli.globals().server, t, o.audience)),
    );
  token
    .command('introspect <token>')
    .description('RFC 7662 introspection, as an operator')
    .action(async (t: string) => cli.out(await introspect(cli.admin(), t)));
}
