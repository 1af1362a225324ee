import type { components } from './api-types.ts';

/** Shapes of the contract, generated from openapi.yaml: presenters are typed against them. */
export type Schemas = components['schemas'];
