import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The layering of @shifter/core (docs/architecture.md) as a test: the relative imports of the library's source files
// (tests and test support excluded) form no cycle, and the layer code imports nothing above it.

const src = dirname(fileURLToPath(import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.includes('test-support')
      ? [path]
      : [];
  });
}

/** file (relative to src) → the files it imports (relative to src). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(/(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+)'/gs)].map((m) =>
      relative(src, normalize(join(dirname(file), (m[1] as string).replace(/\.js$/, '.ts')))),
    );
    graph.set(relative(src, file), targets);
  }
  return graph;
}

/** Every cycle's files, found with Tarjan's strongly connected components. */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let counter = 0;
  const visit = (node: string) => {
    index.set(node, counter);
    low.set(node, counter);
    counter += 1;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node) as number, low.get(next) as number));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node) as number, index.get(next) as number));
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}

describe('module graph of @shifter/core', () => {
  const graph = importGraph();

  it('reads the sources it checks', () => {
    expect(graph.get('layer/entry-rules.ts')).toContain('layer/entry-name.ts');
    expect(graph.get('image-builder/merged-tar.ts')).toContain('layer/layer-merge.ts');
  });

  it('has no import cycle between files', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('keeps jobs/ below metadata/: the queues take a JobStore, the stores implement it', () => {
    const folder = (file: string): string => file.split('/')[0] as string;
    const folders = new Map<string, string[]>();
    for (const [file, targets] of graph) {
      const from = folder(file);
      folders.set(from, [...(folders.get(from) ?? []), ...targets.map(folder).filter((to) => to !== from)]);
    }
    expect(folders.get('metadata')).toContain('jobs');
    expect(folders.get('jobs')).not.toContain('metadata');
    expect(cycles(new Map([...folders].filter(([name]) => name === 'jobs' || name === 'metadata')))).toEqual([]);
  });

  it('keeps layer/ below image-builder/ and convert/, and image-builder/ below convert/', () => {
    const offending = [...graph.entries()].flatMap(([file, targets]) =>
      targets
        .filter(
          (target) =>
            (file.startsWith('layer/') && /^(image-builder|convert|service|registry)\//.test(target)) ||
            (file.startsWith('image-builder/') && /^(convert|service)\//.test(target)),
        )
        .map((target) => `${file} → ${target}`),
    );
    expect(offending).toEqual([]);
  });
});
