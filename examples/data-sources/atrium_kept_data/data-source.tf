# What ACME's destroyed instances left on the targets (their data volumes
# and backup repositories), e.g. to review before purging it with
# `atrium purge acme/NAME`, or to bring an instance back on its data.
data "atrium_kept_data" "acme" {
  tenant_id = "acme"
}

output "acme_kept_data" {
  value = {
    for kept in data.atrium_kept_data.acme.kept :
    "${kept.instance} on ${kept.target}" => kept.volumes
  }
}
