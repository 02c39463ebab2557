import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Workspace packages resolve to their TypeScript sources in tests (the `source` export
  // condition), so tests never run against a stale build.
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'services/*/test/**/*.test.ts', 'services/*/console/src/**/*.test.ts', 'tests/**/*.test.ts', 'bench/**/*.test.ts'],
    // The chaos suite itself runs as its own program (npm run test:chaos); its pure parts are unit tested.
    exclude: ['**/node_modules/**', '**/dist/**', 'tests/chaos/run.ts', 'tests/chaos/mime-fuzz.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
