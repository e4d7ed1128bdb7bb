// ESLint flat config: @eslint/js recommended plus typescript-eslint's type-aware rules on
// every .ts file the tsconfig covers (src/, test/, bench/). `npm run lint` runs it alone;
// `make test` runs it before tap.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // Compiled output and build/test scratch; web/ is plain browser JS, packer/ holds no TypeScript.
  { ignores: ['dist/', 'node_modules/', 'web/', 'packer/', 'build/', 'demo/', '.tap/', 'test/output/', 'bench/work/'] },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // tap queues and awaits every subtest it hands out (t.test() returns a PromiseWithSubtest).
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
      // async marks a Promise-returning contract (Fastify handlers, interface methods, tap
      // callbacks) even without an await; dropping it would turn throws into sync throws.
      '@typescript-eslint/require-await': 'off',
      // Matching control characters is deliberate: entry paths refuse them, tests strip ANSI escapes.
      'no-control-regex': 'off',
    },
  },
  // The one-way dependencies of docs/architecture.md, section 2, checked rather than hoped for.
  ...[
    { dir: 'kit', forbidden: ['oci', 'format', 'transfer', 'build', 'push', 'appliance'] },
    { dir: 'oci', forbidden: ['format', 'transfer', 'build', 'push', 'appliance'] },
    { dir: 'format', forbidden: ['transfer', 'build', 'push', 'appliance'] },
    { dir: 'transfer', forbidden: ['build', 'push', 'appliance'] },
    { dir: 'build', forbidden: ['push', 'appliance'] },
    { dir: 'push', forbidden: ['appliance'] },
  ].map(({ dir, forbidden }) => ({
    files: [`src/${dir}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: forbidden.map((part) => `**/${part}/*`), message: `src/${dir}/ may not import ${forbidden.join(', ')} (docs/architecture.md, section 2)` }],
        paths: [{ name: 'fastify', message: 'only src/appliance/http/ imports fastify' }],
      }],
    },
  })),
  {
    files: ['src/**/*.ts'],
    ignores: ['src/kit/**', 'src/oci/**', 'src/format/**', 'src/transfer/**', 'src/build/**', 'src/push/**', 'src/appliance/http/**'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'fastify', message: 'only src/appliance/http/ imports fastify (docs/architecture.md, section 2)' }],
        patterns: [{ group: ['@fastify/*'], message: 'only src/appliance/http/ imports Fastify plugins' }],
      }],
    },
  },
);
