# Prepares Redmine's (system-wide) database for Atrium's tests. Run by
# scripts/services.sh through `bin/rails runner`, as www-data, with the admin
# API key in ATRIUM_REDMINE_API_KEY. Every step checks before it changes
# anything, so running it again is harmless.

key = ENV.fetch('ATRIUM_REDMINE_API_KEY')

# Default roles, trackers, statuses and priorities: tests look them up over
# REST, and REST cannot create them. Debian's postinst usually loads them
# already (debconf answered English); an empty database gets them here.
Redmine::DefaultData::Loader.load('en') if Redmine::DefaultData::Loader.no_data?

Setting.rest_api_enabled = '1' unless Setting.rest_api_enabled?

admin = User.find_by!(login: 'admin')
if admin.must_change_passwd?
  admin.must_change_passwd = false
  admin.save!
end

# Token generates a random value when it is created, so the chosen key is
# written afterwards.
token = Token.find_by(user_id: admin.id, action: 'api') || Token.create!(user: admin, action: 'api')
token.update_column(:value, key) unless token.value == key

# The support level of a customer's project; only list custom fields on
# projects can carry it, and custom fields cannot be created over REST.
field = ProjectCustomField.find_by(name: 'Support level') || ProjectCustomField.new(name: 'Support level')
field.field_format = 'list'
field.possible_values = %w[standard_8x5 premium_24x7]
field.visible = true
field.is_filter = true
field.save! if field.changed?

puts "redmine-setup: ok (custom field #{field.id})"
