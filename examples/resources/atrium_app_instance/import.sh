# An app instance is imported as TENANT/NAME.
terraform import atrium_app_instance.web acme/web
