// The one place that loads the addon (napi-rs's generated loader picks the platform binary).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding = require('../native.js') as typeof import('../native')
export = binding
