import { describe, expect, it } from 'vitest';
import { loadContract, withoutExamples } from '../../../src/http/contract.ts';

describe('withoutExamples (the contract the validator compiles)', () => {
  it('when the contract has examples, then none is left anywhere in what the validator gets', () => {
    const text = JSON.stringify(withoutExamples(loadContract().document));
    expect(text).not.toMatch(/"examples?":/);
  });

  it('when a schema has a field named example, then the field stays', () => {
    const schema = {
      type: 'object',
      example: { id: 'a' },
      properties: { example: { type: 'string', example: 'x' }, examples: { type: 'array' } },
    };
    expect(withoutExamples(schema)).toEqual({
      type: 'object',
      properties: { example: { type: 'string' }, examples: { type: 'array' } },
    });
  });

  it('when the contract is stripped, then the original keeps its examples', () => {
    const { document } = loadContract();
    withoutExamples(document);
    expect(JSON.stringify(document)).toMatch(/"examples?":/);
  });
});
