// Development only: module hooks that run the repository's TypeScript sources in the enclave
// process (see process-bootstrap.mjs). Type-strips each `.ts` file with TypeScript's
// `transpileModule` (pure JavaScript: no child process, no file written), and maps a `.js`
// specifier that does not exist to its `.ts` source, as tsx does.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ts = createRequire(import.meta.url)('typescript');
const options = {
  module: ts.ModuleKind.ESNext,
  target: ts.ScriptTarget.ES2022,
  verbatimModuleSyntax: true,
  isolatedModules: true,
  sourceMap: false,
};

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (e) {
    const local = specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('file:');
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !local || !/\.[mc]?js$/.test(specifier)) throw e;
    return nextResolve(specifier.replace(/\.([mc]?)js$/, '.$1ts'), context);
  }
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !/\.m?ts$/.test(new URL(url).pathname)) return nextLoad(url, context);
  const fileName = fileURLToPath(url);
  const source = await readFile(fileName, 'utf8');
  const { outputText } = ts.transpileModule(source, { fileName, compilerOptions: options });
  return { format: 'module', source: outputText, shortCircuit: true };
}
