/** Where the console is: `#/<path>?<params>` names a view and what it shows. */
export interface Route {
  path: string;
  params: URLSearchParams;
}

/** The route in the location's fragment. */
export const readRoute = (): Route => {
  const h = location.hash.replace(/^#\/?/, '');
  const [path = '', q = ''] = h.split('?', 2);
  return { path, params: new URLSearchParams(q) };
};

/** `#/trace?jti=…`: a link within the console. */
export const href = (path: string, params: Record<string, string> = {}): string => {
  const q = new URLSearchParams(params).toString();
  return `#/${path}${q ? `?${q}` : ''}`;
};
