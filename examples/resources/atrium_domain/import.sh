# A domain is imported by its host name.
terraform import atrium_domain.web acme.apps.example.net
