/**
 * successCondition / failureCondition expressions, in the subset of Argo's expr-lang syntax
 * that analysis templates use: `result[0] < 0.01`, `len(result) > 0 && result[0] >= 0.9`,
 * `isNaN(result[0])`, `result[0] > 2 * stable[0]`.
 *
 * Parsing and evaluation are done by `jexl`: a tree-walking interpreter (no eval, no
 * Function constructor) whose AST we can inspect. We add expr-lang's `and`/`or`/`not`, give
 * `&&` a higher precedence than `||` (jexl ranks them equal), and register a few functions.
 * Every compiled expression is then checked against a whitelist: only the variables
 * `result` and `stable`, only our functions, numeric/boolean literals, and numeric indexing.
 * With no strings and no property access an expression cannot reach `constructor`,
 * `process` or anything else outside the two number vectors it is given.
 */
import jexlModule from 'jexl';
type JexlInstance = ReturnType<typeof createJexl>;
type Expression = ReturnType<JexlInstance['compile']>;
type Ast = ReturnType<Expression['_getAst']>;

export const CONDITION_VARIABLES = ['result', 'stable'] as const;
export type ConditionVariable = (typeof CONDITION_VARIABLES)[number];

const FUNCTIONS: Record<string, { arity: [number, number]; fn: (...args: unknown[]) => unknown }> = {
  len: { arity: [1, 1], fn: (v) => (Array.isArray(v) ? v.length : raise(`len() expects a vector, got ${describe(v)}`)) },
  isNaN: { arity: [1, 1], fn: (v) => typeof v === 'number' && Number.isNaN(v) },
  isInf: { arity: [1, 1], fn: (v) => v === Infinity || v === -Infinity },
  abs: { arity: [1, 1], fn: (v) => Math.abs(num(v, 'abs')) },
  min: { arity: [1, 16], fn: (...v) => Math.min(...spread(v, 'min')) },
  max: { arity: [1, 16], fn: (...v) => Math.max(...spread(v, 'max')) },
};

function createJexl() {
  const jexl = new jexlModule.Jexl();
  type Lazy = { eval(): Promise<unknown> };
  // addBinaryOp's 4th argument (lazy evaluation, needed for short-circuit) is missing from
  // @types/jexl; the runtime has it since 2.3.0.
  const addLazyOp = jexl.addBinaryOp as unknown as (op: string, precedence: number, fn: (l: Lazy, r: Lazy) => Promise<unknown>, lazy: true) => void;
  const and = (l: Lazy, r: Lazy) => l.eval().then((v) => (v ? r.eval() : v));
  const or = (l: Lazy, r: Lazy) => l.eval().then((v) => (v ? v : r.eval()));
  addLazyOp.call(jexl, '&&', 12, and, true);
  addLazyOp.call(jexl, 'and', 12, and, true);
  addLazyOp.call(jexl, '||', 10, or, true);
  addLazyOp.call(jexl, 'or', 10, or, true);
  jexl.addUnaryOp('not', (v) => !v);
  // jexl's `in` and transforms (`|`) are not expr-lang's meaning; removing `in` keeps it out.
  jexl.removeOp('in');
  for (const [name, { fn }] of Object.entries(FUNCTIONS)) jexl.addFunction(name, fn);
  return jexl;
}

let shared: JexlInstance | undefined;
function engine(): JexlInstance {
  shared ??= createJexl();
  return shared;
}

/** A condition that parsed and passed the whitelist; evaluate it with `evaluate`. */
export interface CompiledCondition {
  readonly source: string;
  /** Which of `result` / `stable` the expression reads: `stable` means a baseline query is needed. */
  readonly variables: ReadonlySet<ConditionVariable>;
  evaluate(vars: ConditionInput): boolean;
}

export interface ConditionInput {
  result: readonly number[];
  stable?: readonly number[];
}

/** Thrown by compileCondition; the policy loader turns it into a ConfigError naming the metric. */
export class ConditionSyntaxError extends Error {
  override name = 'ConditionSyntaxError';
}

/** Thrown by CompiledCondition.evaluate: Argo records such a measurement as Error. */
export class ConditionEvaluationError extends Error {
  override name = 'ConditionEvaluationError';
}

// Policies are few and conditions short: caching every distinct text is bounded and saves a parse per measurement.
const compiled = new Map<string, CompiledCondition>();

export function compileCondition(source: string): CompiledCondition {
  const cached = compiled.get(source);
  if (cached) return cached;
  const fresh = compileUncached(source);
  compiled.set(source, fresh);
  return fresh;
}

function compileUncached(source: string): CompiledCondition {
  const text = source.trim();
  if (!text) throw new ConditionSyntaxError('condition is empty');
  let expression: Expression;
  try {
    expression = engine().compile(text);
  } catch (err) {
    throw new ConditionSyntaxError(`cannot parse "${text}": ${(err as Error).message}`);
  }
  const variables = new Set<ConditionVariable>();
  checkNode(expression._getAst(), variables, text);
  return {
    source: text,
    variables,
    evaluate(input) {
      const context: Record<string, unknown> = { result: guardVector('result', input.result) };
      if (variables.has('stable')) {
        if (!input.stable) throw new ConditionEvaluationError(`"${text}" needs the stable baseline, which was not measured`);
        context.stable = guardVector('stable', input.stable);
      }
      let value: unknown;
      try {
        value = expression.evalSync(context);
      } catch (err) {
        throw new ConditionEvaluationError(`"${text}": ${(err as Error).message}`);
      }
      // expr-lang requires a boolean; a number or undefined is an error, not a silent false.
      if (typeof value !== 'boolean') throw new ConditionEvaluationError(`"${text}" gave ${describe(value)}, not true/false`);
      return value;
    },
  };
}

function checkNode(node: Ast, variables: Set<ConditionVariable>, text: string): void {
  const reject = (why: string): never => {
    throw new ConditionSyntaxError(`"${text}": ${why}`);
  };
  switch (node.type) {
    case 'Literal':
      if (typeof node.value === 'string') reject('strings are not allowed in conditions');
      return;
    case 'ArrayLiteral':
      node.value.forEach((n) => checkNode(n, variables, text));
      return;
    case 'Identifier':
      if (node.from || node.relative) reject(`property access (".${node.value}") is not allowed; use result[i] or len(result)`);
      if (!(CONDITION_VARIABLES as readonly string[]).includes(node.value)) {
        reject(`unknown variable "${node.value}" (conditions can use: ${CONDITION_VARIABLES.join(', ')})`);
      }
      variables.add(node.value as ConditionVariable);
      return;
    case 'FilterExpression':
      if (node.relative) reject('filter expressions are not allowed; index with a number, e.g. result[0]');
      checkNode(node.subject, variables, text);
      checkNode(node.expr, variables, text);
      return;
    case 'UnaryExpression':
      checkNode(node.right, variables, text);
      return;
    case 'BinaryExpression':
      checkNode(node.left, variables, text);
      checkNode(node.right, variables, text);
      return;
    case 'ConditionalExpression':
      checkNode(node.test, variables, text);
      if (node.consequent) checkNode(node.consequent, variables, text);
      checkNode(node.alternate, variables, text);
      return;
    case 'FunctionCall': {
      if (node.pool !== 'functions') reject(`transforms ("|${node.name}") are not allowed`);
      const known = FUNCTIONS[node.name];
      if (!known) reject(`unknown function "${node.name}" (allowed: ${Object.keys(FUNCTIONS).join(', ')})`);
      const [lo, hi] = known!.arity;
      const n = node.args?.length ?? 0;
      if (n < lo || n > hi) reject(`${node.name}() takes ${lo === hi ? lo : `${lo}-${hi}`} argument(s), got ${n}`);
      node.args?.forEach((a) => checkNode(a, variables, text));
      return;
    }
    default:
      reject(`${(node as { type: string }).type} is not allowed in conditions`);
  }
}

/**
 * Indexing past the end of a vector is an error in expr-lang (Argo then records the
 * measurement as Error); jexl would quietly yield undefined. A read-only proxy restores that.
 */
function guardVector(name: string, values: readonly number[]): readonly number[] {
  return new Proxy([...values], {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && /^-?\d+$/.test(prop)) {
        const i = Number(prop);
        if (i < 0 || i >= target.length) {
          throw new ConditionEvaluationError(`${name}[${i}] is out of range (${name} has ${target.length} value${target.length === 1 ? '' : 's'})`);
        }
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
    set() {
      return false;
    },
  });
}

function num(v: unknown, fn: string): number {
  if (typeof v !== 'number') raise(`${fn}() expects a number, got ${describe(v)}`);
  return v as number;
}

function spread(values: unknown[], fn: string): number[] {
  return values.flatMap((v) => (Array.isArray(v) ? (v as unknown[]) : [v])).map((v) => num(v, fn));
}

function raise(message: string): never {
  throw new ConditionEvaluationError(message);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return `a vector of ${v.length}`;
  return v === undefined ? 'nothing' : `${typeof v} ${String(v)}`;
}
