// The UI tests are linted with the extension's rules (its node_modules
// hold eslint and the plugins): `make labext-lint`.
export { default } from '../labextension/eslint.config.mjs';
