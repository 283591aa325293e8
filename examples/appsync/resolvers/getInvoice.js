// Query.getInvoice: the authorizer already refused the request unless the
// caller may read companyId; the resolver checks the argument against what
// was permitted once more (defence in depth) and reads the item by its key,
// so an invoice of another company cannot be fetched by its ID alone.
import { util } from "@aws-appsync/utils";

export function request(ctx) {
  const raw = ctx.identity && ctx.identity.resolverContext && ctx.identity.resolverContext.companyIds;
  const permitted = raw ? JSON.parse(raw)[`${ctx.info.parentTypeName}.${ctx.info.fieldName}`] ?? [] : [];
  if (!permitted.includes(ctx.args.companyId)) {
    util.unauthorized();
  }
  return {
    operation: "GetItem",
    key: util.dynamodb.toMapValues({ companyId: ctx.args.companyId, id: ctx.args.id }),
  };
}

export function response(ctx) {
  if (ctx.error) {
    util.error(ctx.error.message, ctx.error.type);
  }
  return ctx.result;
}
