// The example API's rule table (schema.graphql): which permission on which
// company each root field needs. A root field that is not here is denied.
import { authenticated, companies, onCompany, type Rules } from "./authorizer.js";

/** Invoice fields only those who may update the company's invoices see. */
const stronger = { "Invoice.internalNote": "update" } as const;

export const rules: Rules = {
  // getInvoice(companyId, id): read on companyId.
  "Query.getInvoice": onCompany("read", "companyId", stronger),
  // listInvoices: every company the caller may read; the resolver filters by them.
  "Query.listInvoices": companies("read", stronger),
  // myCompanies: the companies the caller may read.
  "Query.myCompanies": companies("read"),
  // whoami: any caller tenantgate accepts.
  "Query.whoami": authenticated(),
  // createInvoice(input: {companyId, ...}): update on input.companyId.
  "Mutation.createInvoice": onCompany("update", "input.companyId"),
  "Mutation.updateInvoice": onCompany("update", "input.companyId"),
  // deleteInvoice(companyId, id): delete on companyId.
  "Mutation.deleteInvoice": onCompany("delete", "companyId"),
  // onCreateInvoice(companyId): read on companyId, checked when subscribing.
  "Subscription.onCreateInvoice": onCompany("read", "companyId", stronger),
};
