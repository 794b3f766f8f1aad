# A support plan is imported by its tenant's name.
terraform import atrium_support_plan.acme acme
