import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Files that drive labs and servers first, the quick unit and static files last: on two
 * workers the quick ones then fill the end of the run instead of one long lab file running
 * alone while the other worker idles.
 */
class QuickLastSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const quick = (f: TestSpecification) => /[\\/]tests[\\/](unit|static)[\\/]/.test(f.moduleId);
    return [...sorted.filter((f) => !quick(f)), ...sorted.filter(quick)];
  }
}

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/helpers/global-setup.ts'],
    pool: 'forks',
    // Two cores: more workers only make ansible runs contend and time out.
    maxWorkers: 2,
    fileParallelism: true,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    reporters: ['default'],
    sequence: { sequencer: QuickLastSequencer },
  },
});
