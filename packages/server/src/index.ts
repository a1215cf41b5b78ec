export { verifyAuditChain } from './audit/verify.js';
export { type Clock, fakeClock, systemClock } from './clock.js';
export { loadConfigDir, readConfigDir, validateConfig } from './config/config-dir.js';
export { resolveSettings, type Settings } from './config/settings.js';
export { kekFromBytes, loadKek } from './keys/kek.js';
export { openSqliteStore } from './store/sqlite/sqlite-store.js';
export type * from './store/store.js';
export { createWrit, type Writ, type WritOptions } from './writ.js';
