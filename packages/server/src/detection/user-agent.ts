/**
 * What kind of client a user agent names: `browser` (every browser sends `Mozilla/5.0`), `interactive`
 * (command-line and API tools people drive by hand), `tool` (anything else: SDKs, services) or "" when
 * none was sent. Used by the human-use rule (OWASP NHI10), so it errs toward `tool`.
 */
export type UserAgentKind = 'browser' | 'interactive' | 'tool' | '';

const INTERACTIVE =
  /^(curl|wget|httpie|xh|postmanruntime|insomnia|paw|bruno|hoppscotch|thunder client|restsharp-interactive|powershell|windowspowershell)\b/i;

export function userAgentKind(ua: string): UserAgentKind {
  if (ua === '') return '';
  if (ua.startsWith('Mozilla/')) return 'browser';
  if (INTERACTIVE.test(ua)) return 'interactive';
  return 'tool';
}
