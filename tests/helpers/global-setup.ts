import type { TestProject } from 'vitest/node';
import { prepareTemplateDatabase, dropTemplateDatabase, testBackend } from './db.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string | null;
  }
}

/** Migrates one template database; each test file then clones it (CREATE DATABASE ... TEMPLATE). */
export default async function setup(project: TestProject) {
  const backend = await testBackend();
  const template = backend === 'postgres' ? await prepareTemplateDatabase() : null;
  project.provide('templateDatabase', template);
  return async () => {
    if (template) await dropTemplateDatabase(template);
  };
}
