// eslint for the extension and the UI tests: typescript-eslint's
// recommended rules, @jupyter/eslint-plugin's (JupyterLab's own conventions)
// and prettier's config last, so formatting is prettier's alone.
import js from '@eslint/js';
import jupyter from '@jupyter/eslint-plugin';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'lib/',
      'build-test/',
      'jupyter_lineage_labextension/',
      'node_modules/',
      '**/*.js',
      '**/*.mjs',
      'test-results/',
      'playwright-report/',
      'artifacts/'
    ]
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...jupyter.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    rules: {
      // The panel speaks English only; it has no translation bundle.
      'jupyter/no-untranslated-string': 'off',
      '@typescript-eslint/no-namespace': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { args: 'none', caughtErrors: 'none' }
      ],
      eqeqeq: 'error',
      curly: 'error',
      'prefer-arrow-callback': 'error'
    }
  },
  {
    // The panel, the tracker and the indicators exist from the start (the
    // sidebar tab, the cell indicators); only the run and compare views
    // load on first use (actions.ts).
    files: ['src/index.ts'],
    rules: { 'jupyter/prefer-lazy-imports': 'off' }
  },
  prettier
);
