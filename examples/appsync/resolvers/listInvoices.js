// Query.listInvoices: an APPSYNC_JS unit resolver on the invoices DynamoDB
// table. It reads what the tenantgate authorizer permitted from
// ctx.identity.resolverContext and asks only for those companies' invoices,
// instead of OR-ed @auth owner/group rules.
import { util, runtime } from "@aws-appsync/utils";

export function request(ctx) {
  let companies = permittedCompanies(ctx);
  if (ctx.args.companyId) {
    // Narrowing to one company never widens what was permitted.
    companies = companies.filter((id) => id === ctx.args.companyId);
  }
  if (companies.length === 0) {
    // Nothing permitted: answer empty without reading the table.
    return runtime.earlyReturn({ items: [], nextToken: null });
  }
  if (companies.length > 100) {
    // A DynamoDB IN takes at most 100 values: page over companies, or
    // query a companyId index once per company in a pipeline, instead.
    util.error("too many companies for one scan", "TooManyCompanies");
  }
  const expressionValues = {};
  companies.forEach((id, i) => {
    expressionValues[`:c${i}`] = util.dynamodb.toDynamoDB(id);
  });
  return {
    operation: "Scan",
    filter: {
      expression: `#companyId IN (${companies.map((_, i) => `:c${i}`).join(", ")})`,
      expressionNames: { "#companyId": "companyId" },
      expressionValues,
    },
    limit: ctx.args.limit ?? 100,
    nextToken: ctx.args.nextToken,
  };
}

export function response(ctx) {
  if (ctx.error) {
    util.error(ctx.error.message, ctx.error.type);
  }
  return { items: ctx.result.items, nextToken: ctx.result.nextToken ?? null };
}

// The companies the authorizer permitted for this field: resolverContext
// values are strings, so companyIds is JSON keyed by "Type.field".
function permittedCompanies(ctx) {
  const raw = ctx.identity && ctx.identity.resolverContext && ctx.identity.resolverContext.companyIds;
  if (!raw) {
    return [];
  }
  return JSON.parse(raw)[`${ctx.info.parentTypeName}.${ctx.info.fieldName}`] ?? [];
}
