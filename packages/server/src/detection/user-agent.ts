/**
 * What kind of client a user agent names: `browser` (every browser sends `Mozilla/5.0`), `interactive`
 * (API clients people drive by hand: Postman, Insomnia…), `cli` (command-line HTTP tools, which people
 * and scripts both use: curl, wget, HTTPie…), `tool` (anything else: SDKs, services) or "" when none was
 * sent. The human-use rule (OWASP NHI10) reads `browser` and `interactive`, so the classes err toward
 * the less suspicious one.
 */
export type UserAgentKind = 'browser' | 'interactive' | 'cli' | 'tool' | '';

const INTERACTIVE = /^(postmanruntime|insomnia|paw|bruno|hoppscotch|thunder client)\b/i;
const CLI = /^(curl|wget|httpie|xh|powershell|windowspowershell)\b/i;

export function userAgentKind(ua: string): UserAgentKind {
  if (ua === '') return '';
  if (ua.startsWith('Mozilla/')) return 'browser';
  if (INTERACTIVE.test(ua)) return 'interactive';
  if (CLI.test(ua)) return 'cli';
  return 'tool';
}
