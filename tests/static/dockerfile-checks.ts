import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** What the Dockerfile must get right without an engine to build it: returns each problem. */

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string | null;
  image: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buffer = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd();
    // Comment lines are dropped, also inside a continued instruction, as Docker does.
    if (/^\s*#/.test(line) || (!buffer && !line.trim())) return;
    if (!buffer) start = i + 1;
    if (line.endsWith('\\')) {
      buffer += line.slice(0, -1) + ' ';
      return;
    }
    buffer += line;
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(buffer);
    if (m) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
    buffer = '';
  });
  return out;
}

export function stagesOf(text: string): { globalArgs: Map<string, string>; stages: Stage[] } {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of parseDockerfile(text)) {
    if (ins.keyword === 'FROM') {
      const [image = '', as, name] = ins.args.replace(/--platform=\S+\s+/, '').split(/\s+/);
      const resolved = image.replace(/\$\{?(\w+)\}?/g, (_, v: string) => globalArgs.get(v) ?? '');
      stages.push({
        name: as?.toUpperCase() === 'AS' ? name! : null,
        image: resolved,
        instructions: [],
      });
    } else if (stages.length === 0 && ins.keyword === 'ARG') {
      const [k, v = ''] = ins.args.split('=');
      globalArgs.set(k!.trim(), v.trim());
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return { globalArgs, stages };
}

/** An image pinned by an exact version tag and a content digest: `name:1.2.3@sha256:<64 hex>`. */
export function isPinnedImage(ref: string): boolean {
  return /^[\w./-]+:[\w.-]*\d+\.\d+[\w.-]*@sha256:[0-9a-f]{64}$/.test(ref);
}

function globRegex(pattern: string): RegExp {
  const body = pattern
    .replace(/^\.?\/+/, '')
    .replace(/\/+$/, '')
    .split(/(\*\*|\*|\?)/)
    .map((p) =>
      p === '**'
        ? '.*'
        : p === '*'
          ? '[^/]*'
          : p === '?'
            ? '[^/]'
            : p.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
    )
    .join('');
  return new RegExp(`^${body}$`);
}

/** Whether .dockerignore keeps `rel` (a path inside the context) out of the build context. */
export function dockerIgnored(ignoreText: string, rel: string): boolean {
  const parts = rel.replace(/^\.?\//, '').split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const raw of ignoreText.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const negated = line.startsWith('!');
    const re = globRegex(negated ? line.slice(1) : line);
    if (prefixes.some((p) => re.test(p))) ignored = !negated;
  }
  return ignored;
}

function copySources(args: string): { from: string | null; sources: string[] } {
  const tokens = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
  const from = tokens.find((t) => t.startsWith('--from='))?.slice('--from='.length) ?? null;
  const paths = tokens.filter((t) => !t.startsWith('--'));
  return { from, sources: paths.slice(0, -1) };
}

export const RUNTIME_PACKAGES = ['ansible', 'openssh-client', 'iproute2', 'nftables', 'tini'];

/** The runtime base: Node 20 on Debian 12, the Debian whose `ansible` package the image uses. */
const NODE_BOOKWORM = /^node:20(\.\d+)*-bookworm(-slim)?@/;

/** Each shell command of a stage's RUN instructions, in order (`a && b; c` is three). */
const commandsOf = (stage: Stage) =>
  stage.instructions
    .filter((i) => i.keyword === 'RUN')
    .flatMap((i) => i.args.split(/&&|\|\||;/).map((c) => c.trim()));

/** `ENV A=1 B=2` (and the legacy `ENV A 1`) as a map, later values winning. */
function envOf(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const ins of stage.instructions.filter((i) => i.keyword === 'ENV')) {
    const legacy = /^(\w+)\s+([^=\s].*)$/.exec(ins.args);
    if (legacy) env.set(legacy[1]!, legacy[2]!.trim());
    else {
      for (const m of ins.args.matchAll(/(\w+)=("[^"]*"|\S*)/g))
        env.set(m[1]!, m[2]!.replace(/^"|"$/g, ''));
    }
  }
  return env;
}

/** `$NAME`, `${NAME}`, quoted or not: how a RUN or USER refers to an ARG or ENV value. */
const argUse = (name: string) => new RegExp(`^"?\\$\\{?${name}\\}?"?$`);
const optionValue = (words: string[], names: string[]) => {
  const i = words.findIndex((w) => names.includes(w.split('=')[0]!));
  if (i < 0) return undefined;
  return words[i]!.includes('=') ? words[i]!.split('=').slice(1).join('=') : words[i + 1];
};

/** The fixed UID/GID come from build args, and the final USER is the user made with them. */
function userProblems(final: Stage): string[] {
  const problems: string[] = [];
  const args = final.instructions
    .filter((i) => i.keyword === 'ARG')
    .map((i) => i.args.split('=')[0]!.trim());
  for (const arg of ['APP_UID', 'APP_GID']) {
    if (!args.includes(arg)) problems.push(`Dockerfile: the final stage needs ARG ${arg}`);
  }
  const user = final.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args ?? '';
  const [name = '', group] = user.split(':');
  if (argUse('APP_UID').test(name) && group !== undefined && argUse('APP_GID').test(group))
    return problems;
  const useradd = commandsOf(final)
    .map((c) => c.split(/\s+/))
    .find((words) => words[0] === 'useradd' && words.at(-1) === name);
  const uid = useradd && optionValue(useradd, ['--uid', '-u']);
  const gid = useradd && optionValue(useradd, ['--gid', '-g']);
  if (!uid || !argUse('APP_UID').test(uid) || !gid || !argUse('APP_GID').test(gid)) {
    problems.push(
      `Dockerfile: USER ${user} must be \${APP_UID}:\${APP_GID} or made by useradd --uid "\${APP_UID}" --gid "\${APP_GID}"`,
    );
  }
  return problems;
}

/** DATA_DIR holds the database and run logs: the image creates it for its user alone. */
function dataDirProblems(final: Stage): string[] {
  const dir = envOf(final).get('DATA_DIR');
  if (!dir) return ['Dockerfile: the final stage must set ENV DATA_DIR'];
  const made0700 = commandsOf(final).some((command) => {
    const words = command.split(/\s+/);
    const operands = words.slice(1).filter((w) => !w.startsWith('-'));
    if (!operands.some((o) => o === dir || argUse('DATA_DIR').test(o))) return false;
    if (words[0] === 'chmod') return /^0?700$/.test(words[1] ?? '');
    if (words[0] !== 'install' && words[0] !== 'mkdir') return false;
    return /^0?700$/.test(optionValue(words, ['-m', '--mode']) ?? '');
  });
  return made0700 ? [] : [`Dockerfile: DATA_DIR ${dir} must be created with mode 0700`];
}

/**
 * The node_modules the final stage copies come from a stage that pruned its dev dependencies
 * after installing them (or never installed them).
 */
function pruneProblems(stages: Stage[], final: Stage): string[] {
  const copy = final.instructions.find(
    (i) => i.keyword === 'COPY' && /--from=\S+/.test(i.args) && /node_modules/.test(i.args),
  );
  const from = copy && /--from=(\S+)/.exec(copy.args)![1];
  const stage = from ? stages.find((s) => s.name === from) : final;
  if (!stage) return [];
  const npm = commandsOf(stage).filter((c) => /^npm\s+(ci|install|i|prune)\b/.test(c));
  const withoutDev = (c: string) => /--omit[= ]dev\b|--production\b/.test(c);
  const lastIndex = (test: (c: string) => boolean) =>
    npm.reduce((last, c, i) => (test(c) ? i : last), -1);
  const lastFull = lastIndex((c) => /^npm\s+(ci|install|i)\b/.test(c) && !withoutDev(c));
  if (lastFull < 0 || lastIndex(withoutDev) > lastFull) return [];
  return [
    `Dockerfile: stage ${stage.name ?? '(final)'} must prune dev dependencies (npm prune --omit=dev) after installing them`,
  ];
}

export function dockerfileProblems(root: string): string[] {
  const problems: string[] = [];
  const file = path.join(root, 'Dockerfile');
  if (!existsSync(file)) return ['Dockerfile: missing'];
  const ignore = existsSync(path.join(root, '.dockerignore'))
    ? readFileSync(path.join(root, '.dockerignore'), 'utf8')
    : '';
  const { stages } = stagesOf(readFileSync(file, 'utf8'));
  const final = stages.at(-1);
  if (!final) return ['Dockerfile: no FROM'];
  const names = new Set<string>();
  for (const stage of stages) {
    if (!names.has(stage.image) && !isPinnedImage(stage.image)) {
      problems.push(
        `Dockerfile: base image ${stage.image || '(empty)'} is not pinned by version tag and digest`,
      );
    }
    for (const ins of stage.instructions.filter(
      (i) => i.keyword === 'COPY' || i.keyword === 'ADD',
    )) {
      const { from, sources } = copySources(ins.args);
      if (from !== null) {
        if (!names.has(from))
          problems.push(`Dockerfile:${ins.line}: COPY --from=${from} names no earlier stage`);
        continue;
      }
      for (const src of sources) {
        if (!existsSync(path.join(root, src)))
          problems.push(`Dockerfile:${ins.line}: COPY source ${src} does not exist`);
        else if (dockerIgnored(ignore, src))
          problems.push(`Dockerfile:${ins.line}: COPY source ${src} is excluded by .dockerignore`);
      }
    }
    if (stage.name) names.add(stage.name);
  }
  if (!NODE_BOOKWORM.test(final.image))
    problems.push(`Dockerfile: the runtime base ${final.image} is not Node 20 on Debian bookworm`);
  const user = final.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args;
  if (!user || /^(root|0)(:|$)/.test(user))
    problems.push('Dockerfile: the final stage must run as a non-root USER');
  else problems.push(...userProblems(final));
  problems.push(...dataDirProblems(final), ...pruneProblems(stages, final));
  // The warm runner finds its Python side at ../../../runner from dist/runs/warm/.
  const copiesRunner = final.instructions.some(
    (i) => i.keyword === 'COPY' && /^runner\/? \.\/runner\/?$/.test(i.args.trim()),
  );
  if (!copiesRunner) {
    problems.push('Dockerfile: the final stage must COPY runner ./runner (the warm runner)');
  }
  const health = final.instructions.find((i) => i.keyword === 'HEALTHCHECK');
  if (!health?.args.includes('/healthz'))
    problems.push('Dockerfile: the final stage needs a HEALTHCHECK on /healthz');
  const entry = final.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1);
  if (!entry?.args.includes('tini'))
    problems.push('Dockerfile: the final stage must start under tini');
  const installs = final.instructions
    .filter((i) => i.keyword === 'RUN' && i.args.includes('apt-get install'))
    .map((i) => i.args.split(/\s+/));
  for (const pkg of RUNTIME_PACKAGES) {
    if (!installs.some((words) => words.includes(pkg)))
      problems.push(`Dockerfile: the final stage does not install ${pkg}`);
  }
  return problems;
}

/** Stage names, ARG names and EXPOSEd ports: what docker-compose.yml may refer to. */
export function dockerfileFacts(root: string): {
  stages: string[];
  args: string[];
  exposed: string[];
} {
  const { globalArgs, stages } = stagesOf(readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
  const all = stages.flatMap((s) => s.instructions);
  return {
    stages: stages.flatMap((s) => (s.name ? [s.name] : [])),
    args: [
      ...globalArgs.keys(),
      ...all.filter((i) => i.keyword === 'ARG').map((i) => i.args.split('=')[0]!.trim()),
    ],
    exposed: stages
      .at(-1)!
      .instructions.filter((i) => i.keyword === 'EXPOSE')
      .flatMap((i) => i.args.split(/\s+/)),
  };
}
