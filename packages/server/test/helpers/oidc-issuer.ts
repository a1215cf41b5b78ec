import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { exportJWK, SignJWT } from 'jose';

/**
 * A real OIDC-style issuer on 127.0.0.1 for federation tests: its own keys, its JWKS served over HTTP
 * (every fetch counted), key rotation, and tokens minted with whatever claims a platform puts in them.
 */
export interface LocalIssuer {
  /** `http://127.0.0.1:<port>`: the `iss` of its tokens. */
  url: string;
  jwksUri: string;
  /** How many times the JWKS was fetched. */
  fetches(): number;
  /** Signs claims with the current key (`iss` filled in); header fields may be overridden. */
  mint(claims: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
  /** A new current key; the old one stays published unless `dropOld`. */
  rotate(dropOld?: boolean): Promise<void>;
  currentKid(): string;
  close(): Promise<void>;
}

export async function startLocalIssuer(alg: 'RS256' | 'ES256' | 'EdDSA' = 'RS256'): Promise<LocalIssuer> {
  const keys: Array<{ kid: string; privateKey: KeyObject; jwk: Record<string, unknown> }> = [];
  const addKey = async () => {
    const pair =
      alg === 'RS256'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : alg === 'ES256'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : generateKeyPairSync('ed25519');
    const kid = randomBytes(8).toString('hex');
    const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
    keys.push({ kid, privateKey: pair.privateKey, jwk });
  };
  await addKey();
  let fetches = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/jwks') {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    jwksUri: `${url}/.well-known/jwks`,
    fetches: () => fetches,
    async mint(claims, header = {}) {
      const k = keys[keys.length - 1]!;
      return new SignJWT({ iss: url, ...claims })
        .setProtectedHeader({ alg, typ: 'JWT', kid: k.kid, ...header } as { alg: string })
        .sign(k.privateKey);
    },
    async rotate(dropOld = false) {
      await addKey();
      if (dropOld) keys.splice(0, keys.length - 1);
    },
    currentKid: () => keys[keys.length - 1]!.kid,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Claims as GitHub Actions puts them in its OIDC token (a push to main). */
export function githubClaims(now: number, o: { repo?: string; runId?: string; attempt?: string } = {}) {
  const repo = o.repo ?? 'acme/deployer';
  const runId = o.runId ?? '9876543210';
  return {
    jti: randomBytes(16).toString('hex'),
    sub: `repo:${repo}:ref:refs/heads/main`,
    aud: 'https://writ.test',
    ref: 'refs/heads/main',
    sha: 'a3f1c9d2e4b5a6c7d8e9f0a1b2c3d4e5f6a7b8c9',
    repository: repo,
    repository_owner: repo.split('/')[0],
    repository_owner_id: '1234567',
    repository_id: '7654321',
    repository_visibility: 'private',
    run_id: runId,
    run_number: '42',
    run_attempt: o.attempt ?? '1',
    actor: 'octocat',
    actor_id: '583231',
    workflow: 'deploy',
    workflow_ref: `${repo}/.github/workflows/deploy.yml@refs/heads/main`,
    job_workflow_ref: `${repo}/.github/workflows/deploy.yml@refs/heads/main`,
    head_ref: '',
    base_ref: '',
    event_name: 'push',
    ref_type: 'branch',
    ref_protected: 'true',
    environment: 'production',
    runner_environment: 'github-hosted',
    iat: now,
    nbf: now,
    exp: now + 300,
  };
}

/** Claims of a GitLab CI/CD ID token (`id_tokens:` in .gitlab-ci.yml). */
export function gitlabClaims(now: number, o: { project?: string; pipeline?: string; job?: string } = {}) {
  const project = o.project ?? 'acme/billing';
  return {
    jti: randomBytes(16).toString('hex'),
    sub: `project_path:${project}:ref_type:branch:ref:main`,
    aud: 'https://writ.test',
    namespace_id: '72',
    namespace_path: project.split('/')[0],
    project_id: '20',
    project_path: project,
    user_id: '1',
    user_login: 'sam',
    user_email: 'sam@example.com',
    pipeline_id: o.pipeline ?? '574',
    pipeline_source: 'push',
    job_id: o.job ?? '302',
    ref: 'main',
    ref_type: 'branch',
    ref_path: 'refs/heads/main',
    ref_protected: 'true',
    environment: 'production',
    environment_protected: 'true',
    runner_id: 1,
    runner_environment: 'gitlab-hosted',
    sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
    iat: now,
    nbf: now - 5,
    exp: now + 300,
  };
}

/** A Kubernetes projected service-account token (audience from the volume's `audience`). */
export function kubernetesClaims(now: number, iss: string, ns = 'payments', sa = 'ledger') {
  return {
    aud: ['https://writ.test'],
    exp: now + 3600,
    iat: now,
    iss,
    nbf: now,
    jti: randomBytes(16).toString('hex'),
    'kubernetes.io': {
      namespace: ns,
      node: { name: 'node-1', uid: 'c2d4c7c2-7a1e-4b6f-9a7e-0e3c0f9f5b11' },
      pod: { name: `${sa}-7c9d8f6b5-x2x9q`, uid: '9e0d7a35-37a6-4a6c-9a34-2c6e0e6c52a0' },
      serviceaccount: { name: sa, uid: 'a3c1c3b8-1f0e-4a57-b8bb-2b0c3f8b2b9e' },
    },
    sub: `system:serviceaccount:${ns}:${sa}`,
  };
}

/** A SPIRE JWT-SVID: `sub` is the SPIFFE ID; no jti. */
export function spireClaims(now: number, spiffeId: string) {
  return { sub: spiffeId, aud: ['https://writ.test'], exp: now + 300, iat: now };
}

/** A stand-in for the GitHub Actions runner's ID token request endpoint. */
export interface ActionsEndpoint {
  /** The ACTIONS_ID_TOKEN_REQUEST_URL to give the workload. */
  url: string;
  close(): Promise<void>;
}

/**
 * Imitates the runner's ID token request endpoint: GET <url>&audience=…, `Authorization: bearer
 * <requestToken>`; answers with a token `github` mints for `claims()` and the audience asked for.
 * `onRequest` sees every request; with `checkPath`, a path other than the runner's is refused too.
 */
export async function startActionsEndpoint(
  github: LocalIssuer,
  o: {
    requestToken: string;
    claims: () => Record<string, unknown>;
    checkPath?: boolean;
    onRequest?: (asked: { audience: string | null; authorization: string | undefined }) => void;
  },
): Promise<ActionsEndpoint> {
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    o.onRequest?.({ audience: u.searchParams.get('audience'), authorization: req.headers.authorization });
    if (
      (o.checkPath && u.pathname !== '/_apis/pipelines/idtoken') ||
      req.headers.authorization !== `bearer ${o.requestToken}`
    ) {
      res.writeHead(401).end();
      return;
    }
    github.mint({ ...o.claims(), aud: u.searchParams.get('audience') }).then((value) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ count: 1, value }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/_apis/pipelines/idtoken?api-version=2.0`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
