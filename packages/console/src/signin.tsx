import { useEffect, useState } from 'preact/hooks';
import { ApiError, signIn } from './api.js';

/**
 * `/console/signin#<jwt>`: the one-time link `writ console` prints. The token is taken from the
 * fragment (never sent to the server in a URL, so not in its logs), the fragment is cleared at once,
 * and the token is traded for a session cookie.
 */
export function SignIn() {
  const [state, setState] = useState<'working' | 'failed' | 'missing'>('working');
  const [why, setWhy] = useState('');
  useEffect(() => {
    const link = decodeURIComponent(location.hash.replace(/^#/, ''));
    history.replaceState(null, '', location.pathname);
    if (link === '') {
      setState('missing');
      return;
    }
    signIn(link).then(
      () => location.replace('/console/'),
      (e: Error) => {
        setWhy(e instanceof ApiError ? `${e.error}: ${e.description}` : e.message);
        setState('failed');
      },
    );
  }, []);
  return (
    <main class="signin">
      <h1>Writ console</h1>
      {state === 'working' && <p>Signing in…</p>}
      {state === 'missing' && <p>This page needs the one-time link that `writ console` prints.</p>}
      {state === 'failed' && (
        <div role="alert">
          <p class="error">Sign-in refused. {why}</p>
          <p>
            A link works once and for 60 seconds: run <code>writ console</code> again for a new one, or{' '}
            <a href="/console/oidc/start">sign in with your identity provider</a>.
          </p>
        </div>
      )}
    </main>
  );
}
