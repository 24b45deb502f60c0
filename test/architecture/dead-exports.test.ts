import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * An exported value that no other file imports is module-private in all but name: it widens
 * the surface a reader must keep in mind and hides dead code from the compiler. This walks the
 * whole project with the TypeScript checker (static imports resolved through barrels, dynamic
 * `import()` and `typeof import()` counted as using every export of their module) and lists
 * the value exports of agent/, fleet/ and shared/ nothing outside their own file uses.
 * Exempt: types (they cost nothing at run time), barrels (index.ts), and the modules the
 * `bin/` scripts start (their exports are the program's entry).
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PRODUCTION = /^(agent|fleet|shared)\//;

function loadProgram(): ts.Program {
  const host: ts.ParseConfigFileHost = { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } };
  const parsed = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.json'), {}, host);
  if (!parsed) throw new Error('tsconfig.json could not be read');
  return ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } });
}

function deadExports(): string[] {
  const program = loadProgram();
  const checker = program.getTypeChecker();
  const own = program.getSourceFiles().filter((f) => !f.isDeclarationFile && !f.fileName.includes('/node_modules/'));
  const used = new Set<ts.Symbol>();
  const original = (s: ts.Symbol): ts.Symbol => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const moduleOf = (spec: string, from: string): ts.Symbol | undefined => {
    const resolved = ts.resolveModuleName(spec, from, program.getCompilerOptions(), ts.sys).resolvedModule;
    const file = resolved && program.getSourceFile(resolved.resolvedFileName);
    return file ? checker.getSymbolAtLocation(file) : undefined;
  };
  const useAll = (mod: ts.Symbol | undefined): void => {
    if (mod) for (const e of checker.getExportsOfModule(mod)) used.add(original(e));
  };

  for (const file of own) {
    const visit = (node: ts.Node): void => {
      if (ts.isImportDeclaration(node) && node.importClause) {
        const c = node.importClause;
        if (c.name) {
          const s = checker.getSymbolAtLocation(c.name);
          if (s) used.add(original(s));
        }
        const b = c.namedBindings;
        if (b && ts.isNamedImports(b)) {
          for (const el of b.elements) {
            const s = checker.getSymbolAtLocation(el.name);
            if (s) used.add(original(s));
          }
        } else if (b && ts.isNamespaceImport(b) && ts.isStringLiteral(node.moduleSpecifier)) {
          useAll(moduleOf(node.moduleSpecifier.text, file.fileName));
        }
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const arg = node.arguments[0];
        if (arg && ts.isStringLiteralLike(arg)) useAll(moduleOf(arg.text, file.fileName));
      } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
        useAll(moduleOf(node.argument.literal.text, file.fileName));
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
  // The modules bin/ starts: their exports are the program's entry.
  for (const entry of ['agent/cli/entry.ts', 'fleet/main.ts']) {
    const f = program.getSourceFile(path.join(ROOT, entry));
    useAll(f && checker.getSymbolAtLocation(f));
  }

  const dead: string[] = [];
  for (const file of own) {
    const rel = path.relative(ROOT, file.fileName).split(path.sep).join('/');
    if (!PRODUCTION.test(rel) || path.basename(rel) === 'index.ts') continue;
    const mod = checker.getSymbolAtLocation(file);
    if (!mod) continue;
    for (const e of checker.getExportsOfModule(mod)) {
      if (e.flags & ts.SymbolFlags.Alias) continue; // a re-export: its original is judged where it is declared
      if (!(e.flags & ts.SymbolFlags.Value)) continue;
      if (e.declarations?.[0]?.getSourceFile() !== file) continue; // `export *` of another file
      if (!used.has(e)) dead.push(`${rel}: ${e.getName()}`);
    }
  }
  return dead.sort();
}

describe('exports', () => {
  it('every exported value of agent/, fleet/ and shared/ is imported by some other file', () => {
    expect(deadExports()).toEqual([]);
  }, 120_000);
});
