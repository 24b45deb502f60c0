import { readFileSync } from 'node:fs';
import ts from 'typescript';

/**
 * The TSDoc text of each property of the object literal that `export const <name> = ...`
 * holds (directly, or as an argument of a call such as `defineCatalogue('AGENT', {...})`),
 * keyed by property name, as one line. Properties without a comment are absent.
 */
export function propertyDocs(file: string, name: string): Map<string, string> {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  let literal: ts.ObjectLiteralExpression | undefined;
  const find = (node: ts.Node): void => {
    if (literal) return;
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.name.text === name && node.initializer) {
      const init = node.initializer;
      if (ts.isObjectLiteralExpression(init)) literal = init;
      else if (ts.isCallExpression(init)) literal = init.arguments.find(ts.isObjectLiteralExpression);
      return;
    }
    ts.forEachChild(node, find);
  };
  find(source);
  if (!literal) throw new Error(`${file}: no object literal for ${name}`);
  const docs = new Map<string, string>();
  for (const p of literal.properties) {
    if (!p.name || !(ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) continue;
    const text = ts
      .getJSDocCommentsAndTags(p)
      .filter(ts.isJSDoc)
      .map((d) => ts.getTextOfJSDocComment(d.comment) ?? '')
      .join(' ')
      .replace(/\s+/g, ' ')
      .trim();
    if (text) docs.set(p.name.text, text);
  }
  return docs;
}
