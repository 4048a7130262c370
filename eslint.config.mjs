// ESLint (flat config): typescript-eslint's strict rules for every TypeScript file of the monorepo.
// Formatting is prettier's job (npm run format:check), so no stylistic rules here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.hdx/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: 'module' },
    rules: {
      // `_name` marks a binding kept on purpose (destructuring a field away, an unused callback argument).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
    },
  },
  {
    // The gateway's store, ledger and HTTP layers are asynchronous: a promise never awaited (a write not
    // waited for, a Promise tested as a boolean) is a bug the types alone do not catch.
    files: ['gateway/src/**/*.ts'],
    languageOptions: { parserOptions: { project: './gateway/tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // HL7 v2 and MLLP are framed with control characters (0x0B, 0x1C, 0x0D): matching them is the point.
    files: ['fhir-mappers/src/hl7v2/**/*.ts', 'gateway/src/ingest/mllp*.ts'],
    rules: { 'no-control-regex': 'off' },
  },
  {
    // Tests assert on values they have just checked; non-null assertions there read better than guards.
    files: ['**/*.test.ts', 'test/**/*.ts', '**/test-support/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
