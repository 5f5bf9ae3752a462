"""A base URL per profile (an OpenAI-compatible server for the user's own key) and the team key."""

import profiles.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('profiles', '0002_apitoken'),
    ]

    operations = [
        migrations.AddField(
            model_name='profile',
            name='openai_base_url',
            field=models.CharField(blank=True, default='', max_length=500),
        ),
        migrations.CreateModel(
            name='TeamKey',
            fields=[
                ('id', models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ('openai_api_key', profiles.fields.EncryptedTextField(blank=True, default='')),
                ('openai_organization_id', models.CharField(blank=True, default='', max_length=64)),
                ('openai_base_url', models.CharField(blank=True, default='', max_length=500)),
                ('available_to_everyone', models.BooleanField(default=False, help_text='Every user without a key of their own may use it.')),
                ('openai_api_key_updated_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('groups', models.ManyToManyField(blank=True, help_text='Otherwise only the members of these groups may use it.', related_name='+', to='auth.group')),
            ],
            options={
                'verbose_name': 'team key',
                'verbose_name_plural': 'team key',
            },
        ),
    ]
